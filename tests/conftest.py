import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

warnings.filterwarnings("ignore")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


def synthetic_columns(n_episodes=6, length=20, obs_dim=8, act_dim=2, seed=0, n_demos=2):
    """A small learner table as columns (the shape collect writes), with no simulator."""
    rng = np.random.default_rng(seed)
    n = n_episodes * length
    episode_id = np.repeat(np.arange(n_episodes), length)
    split = np.where(episode_id < n_demos, "safe_demo", "unlabeled")
    truncated = np.zeros(n, dtype=bool)
    truncated[length - 1::length] = True
    return {
        "episode_id": episode_id,
        "step": np.tile(np.arange(length), n_episodes),
        "obs": rng.standard_normal((n, obs_dim)).astype(np.float32),
        "action": rng.uniform(-1, 1, (n, act_dim)).astype(np.float32),
        "reward": rng.standard_normal(n).astype(np.float32),
        "terminated": np.zeros(n, dtype=bool),
        "truncated": truncated,
        "split": split,
    }


@pytest.fixture
def synthetic_dataset(tmp_path):
    from dspo.data.schemas import DATASET, write_table

    cols = synthetic_columns()
    path = tmp_path / "data" / "BallCircle" / "dataset.parquet"
    write_table(DATASET, cols, path, task="BallCircle", obs_dim=8, act_dim=2)
    return path

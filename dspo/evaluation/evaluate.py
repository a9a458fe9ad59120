"""Roll a policy out in the real simulator and score it with DSRL's normalization.

normalized reward = (R - R_min) / (R_max - R_min); normalized cost = C / kappa; a policy is
*safe* when its mean normalized cost is <= 1. Evaluation seeds come from `dspo.core.seeds`,
disjoint from every seed `collect` can use, so no evaluation episode replays a training one.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import ClassVar, Iterator

import numpy as np
import pandas as pd

from dspo.core.config import PosInt, Section
from dspo.data.rollout import ActFn, rollout_episodes
from dspo.data.tasks import TaskSpec


class EvalConfig(Section):
    """params.yaml `eval`: real-simulator evaluation."""

    section: ClassVar[str] = "eval"
    tuning_episodes: PosInt  # tuning block: every knob of every algorithm is chosen on these
    test_episodes: PosInt  # test block: the committed tables, never used to choose anything
    n_envs: PosInt  # envs stepped in lock-step


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Let the policy act at one torch thread, then restore the caller's count.

    A batched forward's float sums depend on the thread count, and in closed loop a last-bit difference
    changes the episode: the same BC-Safe policy scored 0.4286 at 1 thread and 0.4290 at 2 on BallCircle's
    test block. At one thread an evaluation is the same on any number of cores (as `collect` is); a
    forward of `n_envs` rows gains nothing from more threads.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def evaluate_policy(spec: TaskSpec, act_fn: ActFn, seeds: list[int], n_envs: int,
                    desc: str | None = None) -> tuple[pd.DataFrame, dict]:
    """Return the per-episode table and the summary metrics of `act_fn` on `spec`."""
    with one_torch_thread():
        episodes = rollout_episodes(spec, act_fn, seeds, n_envs=n_envs, desc=desc)
    table = pd.DataFrame({
        "episode": np.arange(len(episodes)),
        "seed": [ep.seed for ep in episodes],
        "reward": [ep.reward_return for ep in episodes],
        "cost": [ep.cost_return for ep in episodes],
        "length": [ep.length for ep in episodes],
    })
    table["normalized_reward"] = [spec.normalized_reward(r) for r in table["reward"]]
    table["normalized_cost"] = [spec.normalized_cost(c) for c in table["cost"]]
    return table, summarize(spec, table)


def summarize(spec: TaskSpec, table: pd.DataFrame) -> dict:
    norm_cost = float(table["normalized_cost"].mean())
    return {
        "task": spec.name,
        "normalized_reward": float(table["normalized_reward"].mean()),
        "normalized_reward_std": float(table["normalized_reward"].std(ddof=0)),
        "normalized_cost": norm_cost,
        "normalized_cost_std": float(table["normalized_cost"].std(ddof=0)),
        "reward": float(table["reward"].mean()),
        "cost": float(table["cost"].mean()),
        "episode_length": float(table["length"].mean()),
        "safe_episode_fraction": float((table["cost"] <= spec.cost_limit).mean()),
        "episodes": int(len(table)),
        "safe": bool(norm_cost <= 1.0),
        "cost_limit": spec.cost_limit,
    }

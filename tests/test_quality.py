"""The dataset quality gate: usable data passes, the measured DroneCircle failure is refused by name."""
import numpy as np
import pandas as pd

from dspo.data.quality import QualityConfig, dataset_quality
from dspo.data.tasks import get_task

CFG = QualityConfig(min_best_safe_return=0.1, max_terminated_share=0.9, min_safe_length_ratio=0.75, coverage_bins=5,
                    min_coverage=0.25)


def frame(returns, costs, lengths, terminated):
    costs = np.asarray(costs, dtype=float)
    return pd.DataFrame({"reward_return": returns, "cost_return": costs, "length": lengths,
                         "terminated": terminated, "is_safe": costs <= 10.0})


def test_data_spanning_the_plane_passes():
    spec = get_task("BallCircle")  # R_min 0.383, R_max 881.463, kappa 10
    rng = np.random.default_rng(0)
    returns = rng.uniform(0.0, 600.0, 200)
    costs = np.where(rng.random(200) < 0.5, rng.uniform(0, 10, 200), rng.uniform(10, 30, 200))
    metrics, problems = dataset_quality(spec, frame(returns, costs, 200, False), CFG)
    assert problems == []
    assert metrics["best_safe_normalized_return"] > 0.5 and metrics["safe_length_ratio"] == 1.0
    assert 0.2 < metrics["coverage"] <= 1.0 and metrics["terminated_share"] == 0.0


def test_agents_that_never_learned_are_refused_naming_every_failed_check():
    spec = get_task("DroneCircle")  # R_min 207.8: every return below it normalizes negative
    rng = np.random.default_rng(1)
    lengths = rng.integers(40, 147, 300)
    costs = np.where(lengths < 90, rng.uniform(0, 10, 300), rng.uniform(11, 40, 300))  # safe = crashed sooner
    metrics, problems = dataset_quality(spec, frame(rng.uniform(2, 31, 300), costs, lengths, True), CFG)
    assert metrics["best_safe_normalized_return"] < 0 and metrics["terminated_share"] == 1.0
    text = " | ".join(problems)
    for knob in ("min_best_safe_return", "max_terminated_share", "min_safe_length_ratio", "min_coverage"):
        assert f"collect.quality.{knob}" in text
    assert "behavior.env_steps" in text

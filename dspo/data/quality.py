"""The dataset quality gate: can these episodes support DSPO at all?

The split rules (`collect.check_split`) ask for the right *mix* of demos and unlabeled episodes;
this gate asks whether the behavior agents produced usable data in the first place. Measured
failure it is built from: on DroneCircle with the default behavior budget no agent learns to fly,
every episode scores below DSRL's R_min, 96-100 % end by termination after 40-146 of 300 steps, and
the "safe" episodes are merely the ones that crash sooner. Per collected episode set it reports

- `best_safe_normalized_return` (DSRL-normalized) and the spread of safe returns;
- `terminated_share`: episodes ended by the simulator rather than by the time limit;
- `safe_length_ratio`: median length of safe episodes over the median length of unsafe ones -- far
  below 1 means safety comes from ending early, not from behaving safely;
- `coverage`: the share of a `coverage_bins` x `coverage_bins` grid over normalized return [0, 1] and
  normalized cost [0, 2] (cost C/kappa, clipped) that holds at least one episode.

Each check has a threshold under `collect.quality`; a failed one names the metric and the knobs
to turn (collect.strict decides between refusing and warning).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from dspo.core.config import Float, PosInt, UnitFloat
from dspo.data.tasks import TaskSpec

COST_AXIS_MAX = 2.0  # normalized cost range of the coverage grid: [0, 2 kappa], costlier episodes in the last row
BEHAVIOR_KNOBS = "train the behavior agents longer (behavior.env_steps) or change their cost limits (behavior.agents)"


class QualityConfig(BaseModel):
    """params.yaml `collect.quality`: thresholds of the dataset quality gate."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    min_best_safe_return: Float  # the best safe episode's DSRL-normalized return must reach this
    max_terminated_share: UnitFloat  # at most this share of episodes may end by termination
    min_safe_length_ratio: UnitFloat  # median safe-episode length / median unsafe-episode length, at least
    coverage_bins: PosInt  # grid resolution per axis of the reward-cost plane
    min_coverage: UnitFloat  # share of grid cells holding an episode, at least


def dataset_quality(spec: TaskSpec, episodes: pd.DataFrame, cfg: QualityConfig) -> tuple[dict, list[str]]:
    """(metrics, problems) of a per-episode frame with reward_return, cost_return, length, is_safe, terminated."""
    ret = np.asarray([spec.normalized_reward(r) for r in episodes["reward_return"]], dtype=np.float64)
    cost = np.asarray([spec.normalized_cost(c) for c in episodes["cost_return"]], dtype=np.float64)
    safe = episodes["is_safe"].to_numpy(dtype=bool)
    lengths = episodes["length"].to_numpy(dtype=np.float64)
    bins = cfg.coverage_bins
    cells = set(zip(np.clip((ret * bins).astype(int), 0, bins - 1),
                    np.clip((cost / COST_AXIS_MAX * bins).astype(int), 0, bins - 1)))
    metrics = {
        "best_safe_normalized_return": float(ret[safe].max()) if safe.any() else float("nan"),
        "safe_normalized_return_std": float(ret[safe].std()) if safe.any() else float("nan"),
        "safe_normalized_return_p90_minus_p10": (float(np.quantile(ret[safe], 0.9) - np.quantile(ret[safe], 0.1))
                                                 if safe.any() else float("nan")),
        "terminated_share": float(episodes["terminated"].mean()),
        "safe_length_ratio": (float(np.median(lengths[safe]) / np.median(lengths[~safe]))
                              if safe.any() and (~safe).any() else float("nan")),
        "coverage": len(cells) / bins**2,
        "thresholds": cfg.model_dump(),
    }
    failed = []  # (what failed, which knobs to turn)
    if not metrics["best_safe_normalized_return"] >= cfg.min_best_safe_return:
        failed.append((f"the best safe episode has normalized return {metrics['best_safe_normalized_return']:.3f} "
                       f"< collect.quality.min_best_safe_return={cfg.min_best_safe_return:g}", BEHAVIOR_KNOBS))
    if metrics["terminated_share"] > cfg.max_terminated_share:
        failed.append((f"{100 * metrics['terminated_share']:.0f}% of episodes end by termination "
                       f"> collect.quality.max_terminated_share={cfg.max_terminated_share:g}", BEHAVIOR_KNOBS))
    if metrics["safe_length_ratio"] < cfg.min_safe_length_ratio:  # NaN (one class missing): the split says so
        failed.append((f"safe episodes are short (median length {metrics['safe_length_ratio']:.2f} x the unsafe "
                       f"ones') < collect.quality.min_safe_length_ratio={cfg.min_safe_length_ratio:g}, so they are "
                       f"safe because they end early", BEHAVIOR_KNOBS))
    if metrics["coverage"] < cfg.min_coverage:
        failed.append((f"episodes cover {100 * metrics['coverage']:.0f}% of the reward-cost plane "
                       f"< collect.quality.min_coverage={cfg.min_coverage:g}",
                       "add agents at other cost limits (behavior.agents), noise levels (collect.noise) or mixtures "
                       "(collect.mix_pairs)"))
    last = {knobs: i for i, (_, knobs) in enumerate(failed)}  # each fix is said once, after its last check
    problems = [f"{what}: {knobs}" if last[knobs] == i else what for i, (what, knobs) in enumerate(failed)]
    return metrics, problems

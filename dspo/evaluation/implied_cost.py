"""Implied cost of generated data: which real pairs do generated (s, a) pairs resemble? (An oracle diagnostic.)

A diffusion sample has no simulator cost, so it is read off its nearest real pair: each query pair takes
the step cost of its nearest neighbour in a *reference* half of D^U (standardized (s, a) space) and
whether that neighbour's episode is unsafe. The demos and the other half of D^U (its safe and its unsafe
episodes) are measured the same way, so D^G is placed on a yardstick whose ends are known: what a truly
safe and a truly unsafe real episode look like through the same lens. Reads `oracle.parquet`: an
analysis (scripts/generation_probe.py), never a method's input.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dspo.evaluation.generation import nearest
from dspo.learners.normalizers import GaussianNormalizer


@dataclass
class Reference:
    """Real D^U pairs the queries are matched to, in standardized (s, a) space, with their oracle facts."""

    sa: torch.Tensor  # (n, d) standardized
    step_cost: np.ndarray  # (n,) the pair's oracle step cost
    unsafe_episode: np.ndarray  # (n,) its episode exceeds kappa
    position: np.ndarray  # (n,) step index / episode length: where in an episode the pair sits


def match(queries_sa: np.ndarray, norm: GaussianNormalizer, ref: Reference, batch: int = 256
          ) -> tuple[np.ndarray, np.ndarray]:
    """Index of and distance to each query pair's nearest reference pair (small batches: a batch's distance
    matrix is batch x |reference| floats)."""
    return nearest(norm.normalize(queries_sa), ref.sa, batch)


def implied_cost(idx: np.ndarray, dist: np.ndarray, ref: Reference, steps_per_episode: float, cost_limit: float,
                 segment_length: int | None = None) -> dict:
    """Statistics of the query pairs' nearest reference pairs (`match`).

    `implied_normalized_cost` = mean implied step cost x steps_per_episode / kappa: the normalized episode
    cost a policy visiting these pairs for a whole episode would incur. With `segment_length`, rows are
    consecutive segments of that length and `segments_with_cost` is the share of segments touching a costly pair.
    """
    step_cost = ref.step_cost[idx]
    out = {
        "pairs": int(len(idx)),
        "nn_distance_mean": float(dist.mean()),
        "implied_step_cost": float(step_cost.mean()),
        "implied_normalized_cost": float(step_cost.mean() * steps_per_episode / cost_limit),
        "nn_in_unsafe_episode": float(ref.unsafe_episode[idx].mean()),
        "nn_position_mean": float(ref.position[idx].mean()),
    }
    if segment_length:
        out["segments_with_cost"] = float((step_cost.reshape(-1, segment_length).sum(1) > 0).mean())
    return out


def by_condition(idx: np.ndarray, condition: np.ndarray, ref: Reference, bins: int) -> list[dict]:
    """Implied step cost per equal-frequency bin of a per-row condition (e.g. the return condition)."""
    cost = ref.step_cost[idx]
    edges = np.unique(np.quantile(condition, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:  # one condition value for every row
        return [{"condition_lo": float(edges[0]), "condition_hi": float(edges[0]),
                 "implied_step_cost": float(cost.mean()), "pairs": int(len(cost))}]
    which = np.clip(np.searchsorted(edges, condition, side="right") - 1, 0, len(edges) - 2)
    return [{"condition_lo": float(edges[b]), "condition_hi": float(edges[b + 1]),
             "implied_step_cost": float(cost[which == b].mean()), "pairs": int((which == b).sum())}
            for b in range(len(edges) - 1) if np.any(which == b)]

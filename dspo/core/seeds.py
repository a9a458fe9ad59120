"""Seed ranges: collection and evaluation never share a seed, so no evaluation episode replays a training one.

collect draws from [0, EVAL_SEED_START) (seed * 10^7 + job * 10^4 + i); evaluation block `b`
uses [EVAL_SEED_START + b * EVAL_SEEDS_PER_RUN, ...).
"""
from __future__ import annotations

from dspo.core.errors import ParamError

EVAL_SEED_START = 1_000_000_000
EVAL_SEEDS_PER_RUN = 100_000
COLLECT_SEEDS_PER_RUN = 10_000_000
COLLECT_SEEDS_PER_JOB = 10_000


def eval_seeds(seed: int, episodes: int) -> list[int]:
    """The evaluation seeds of block `seed`: `episodes` consecutive seeds above every collection seed."""
    if episodes < 1:
        raise ParamError(f"eval.episodes={episodes} must be >= 1")
    if episodes > EVAL_SEEDS_PER_RUN:
        raise ParamError(f"eval.episodes={episodes} must be <= {EVAL_SEEDS_PER_RUN}")
    if seed < 0:
        raise ParamError(f"eval.seed={seed} must be >= 0")
    start = EVAL_SEED_START + seed * EVAL_SEEDS_PER_RUN
    return list(range(start, start + episodes))


def check_collect_seed(seed: int) -> None:
    if seed < 0 or (seed + 1) * COLLECT_SEEDS_PER_RUN > EVAL_SEED_START:
        raise ParamError(f"seed={seed} must lie in [0, {EVAL_SEED_START // COLLECT_SEEDS_PER_RUN - 1}] so collection "
                         f"seeds stay disjoint from evaluation seeds")

"""Seed ranges: collection and evaluation never share a seed, and the two evaluation blocks never overlap.

collect draws from [0, EVAL_SEED_START) (data seed * 10^7 + job * 10^4 + i). Evaluation has two
blocks of `EVAL_SEEDS_PER_BLOCK` seeds above that: the *tuning* block, on which every knob of every
algorithm is chosen, and the *test* block, which only the committed tables read. Every
(algorithm, learner seed) meets the same episodes of a block, so comparisons are paired.
"""
from __future__ import annotations

from typing import ClassVar

from pydantic import Field, field_validator

from dspo.core.config import NonNegInt, Section
from dspo.core.errors import ParamError

EVAL_SEED_START = 1_000_000_000
EVAL_SEEDS_PER_BLOCK = 100_000
EVAL_BLOCKS = ("tuning", "test")  # block b starts at EVAL_SEED_START + b * EVAL_SEEDS_PER_BLOCK
COLLECT_SEEDS_PER_RUN = 10_000_000
COLLECT_SEEDS_PER_JOB = 10_000


def eval_seeds(block: str, episodes: int) -> list[int]:
    """The first `episodes` seeds of evaluation block `block` ("tuning" or "test")."""
    if block not in EVAL_BLOCKS:
        raise ParamError(f"unknown evaluation block {block!r}; valid: {list(EVAL_BLOCKS)}")
    if episodes < 1:
        raise ParamError(f"eval.{block}_episodes={episodes} must be >= 1")
    if episodes > EVAL_SEEDS_PER_BLOCK:
        raise ParamError(f"eval.{block}_episodes={episodes} must be <= {EVAL_SEEDS_PER_BLOCK}")
    start = EVAL_SEED_START + EVAL_BLOCKS.index(block) * EVAL_SEEDS_PER_BLOCK
    return list(range(start, start + episodes))


def check_collect_seed(seed: int) -> None:
    if seed < 0 or (seed + 1) * COLLECT_SEEDS_PER_RUN > EVAL_SEED_START:
        raise ParamError(f"seeds.data={seed} must lie in [0, {EVAL_SEED_START // COLLECT_SEEDS_PER_RUN - 1}] so "
                         f"collection seeds stay disjoint from evaluation seeds")


class SeedsConfig(Section):
    """params.yaml `seeds`: the data seed apart from the learner seeds.

    `data` drives train_behavior and collect; `learner` every BC, DSPO and analysis run;
    `baseline` the six baselines (a shorter list: they cost ~24 min per seed on 2 cores). Each
    learner stage receives its seed in its command, so adding a seed never reruns the data stages.
    """

    section: ClassVar[str] = "seeds"
    data: NonNegInt
    learner: list[NonNegInt] = Field(min_length=1)
    baseline: list[NonNegInt] = Field(min_length=1)

    @field_validator("learner", "baseline")
    @classmethod
    def _distinct(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError(f"seeds repeat in {value}")
        return value

"""The one registry of algorithms: each learner module declares its `ALGORITHMS`, this module collects them.

A name is at once the params.yaml list entry (`algorithms.*`, read by dvc.yaml's matrices and by
the report), the folder `models/<task>/<name>/seed<k>/` and `reports/<task>/eval/<name>/seed<k>.json`.
Adding an algorithm: write its module with an `ALGORITHMS` entry, add its name to the params list.
`role` keeps analyses apart from methods: an analysis row may read the oracle and never takes
the "best safe" mark.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import ClassVar

from pydantic import Field

from dspo.core.config import Section
from dspo.core.seeds import SeedsConfig
from dspo.learners.contract import ANALYSIS, BASELINE, METHOD, Algorithm  # noqa: F401 (re-exported)


def algorithms() -> dict[str, Algorithm]:
    """Every algorithm declared by a module under `dspo.learners`, by name (tables follow the params list order)."""
    import dspo.learners

    out: dict[str, Algorithm] = {}
    for info in pkgutil.walk_packages(dspo.learners.__path__, "dspo.learners."):
        module = importlib.import_module(info.name)
        for alg in getattr(module, "ALGORITHMS", ()):
            if alg.name in out:
                raise RuntimeError(f"algorithm {alg.name!r} is registered twice")
            out[alg.name] = alg
    return out


class AlgorithmLists(Section):
    """params.yaml `algorithms`: the lists dvc.yaml's matrix stages and the report read."""

    section: ClassVar[str] = "algorithms"
    bc: list[str] = Field(min_length=1)  # train_bc@<name>-<seed>: BC on a split of the dataset
    baselines: list[str]  # train_baseline@<name>-<seed>: single-stage learners on transitions
    evaluated: list[str] = Field(min_length=1)  # evaluate@<name>-<seed> over seeds.learner; report rows
    evaluated_baselines: list[str]  # evaluate_baseline@<name>-<seed> over seeds.baseline; report rows after those

    def unknown(self) -> list[str]:
        """Names in the lists that no module registers."""
        known = algorithms()
        names = self.bc + self.baselines + self.evaluated + self.evaluated_baselines
        return [n for n in dict.fromkeys(names) if n not in known]

    def runs(self, seeds: "SeedsConfig") -> list[tuple[str, list[int]]]:
        """(algorithm, its learner seeds) in report order."""
        return [(a, list(seeds.learner)) for a in self.evaluated] + \
               [(a, list(seeds.baseline)) for a in self.evaluated_baselines]

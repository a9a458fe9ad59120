"""The one registry of algorithms: each learner module declares its `ALGORITHMS`, this module collects them.

A name is at once the params.yaml list entry (`algorithms.*`, read by dvc.yaml's foreach and by
the report), the folder `models/<task>/<name>/` and the file `reports/<task>/eval/<name>.json`.
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
    """params.yaml `algorithms`: the lists dvc.yaml's foreach stages and the report read."""

    section: ClassVar[str] = "algorithms"
    bc: list[str] = Field(min_length=1)  # train_bc@<name>: BC on a split of the dataset
    baselines: list[str]  # train_baseline@<name>: single-stage learners on transitions
    evaluated: list[str] = Field(min_length=1)  # evaluate@<name>, and the report's rows in this order

    def unknown(self) -> list[str]:
        """Names in the lists that no module registers."""
        known = algorithms()
        return [n for n in dict.fromkeys(self.bc + self.baselines + self.evaluated) if n not in known]

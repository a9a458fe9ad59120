"""The package's floors: what each layer may import (a newcomer reads it off the tree; this test keeps it true)."""
import subprocess
import sys

import pytest

from tests.conftest import PYTHON, REPO

sys.path.insert(0, str(REPO / "tools"))
import stage_deps  # noqa: E402

SIMULATOR_MODULES = ("dspo/data/envs/", "dspo/data/rollout.py", "dspo/data/behavior.py", "dspo/data/collect.py")
ALLOWED = {  # floor -> floors its modules may import
    "core": ("core",),
    "data": ("core", "data"),
    "learners": ("core", "data", "learners"),
    "evaluation": ("core", "data", "learners", "evaluation"),
    "suite": ("core", "data", "learners", "evaluation", "suite"),  # drives whole pipelines; no stage imports it
}


def package_files():
    return sorted(p.relative_to(REPO).as_posix() for p in (REPO / "dspo").rglob("*.py") if "__pycache__" not in p.parts)


def floor(path: str) -> str | None:
    parts = path.split("/")
    return parts[1] if len(parts) > 2 else None


@pytest.mark.parametrize("path", package_files())
def test_modules_import_only_their_floor_and_below(path):
    own = floor(path)
    if own is None:
        return
    for dep in stage_deps.direct_imports(path):
        dep_floor = floor(dep)
        assert dep_floor is None or dep_floor in ALLOWED[own], f"{path} ({own}) imports {dep} ({dep_floor})"


def test_learners_never_import_a_simulator():
    learner_files = [p for p in package_files() if p.startswith("dspo/learners/")]
    closure = stage_deps.closure(set(learner_files))
    assert not [p for p in closure if p.startswith(SIMULATOR_MODULES)]


def test_registry_names_every_algorithm_once_and_params_lists_are_registered():
    from dspo.core.config import read_section
    from dspo.learners.registry import ANALYSIS, AlgorithmLists, algorithms

    registry = algorithms()
    lists = read_section(AlgorithmLists, REPO / "params.yaml")
    assert lists.unknown() == []
    evaluated = lists.evaluated + lists.evaluated_baselines
    assert sorted(evaluated) == sorted(registry), "every registered algorithm is evaluated once, and only those"
    assert [n for n, a in registry.items() if a.role == ANALYSIS] == ["analysis_oracle_dspo"]


def test_help_prints_no_third_party_noise():
    proc = subprocess.run([PYTHON, str(REPO / "stages" / "collect.py"), "--help"], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr

"""Complete code deps: every package file a stage runs is a dep of that stage in dvc.yaml.

Training is byte-deterministic, so a stage whose code changed but whose deps do not say so
would be skipped by DVC with a stale result. The check follows imports (tools/stage_deps.py).
"""
import shutil
import sys

import yaml

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "tools"))
import stage_deps  # noqa: E402


def test_every_stage_lists_its_import_closure():
    missing = stage_deps.missing_deps()
    assert missing == {}, "dvc.yaml deps miss package files:\n" + "\n".join(
        f"{name}: {files}" for name, files in missing.items())


def test_the_check_catches_a_dropped_dep(tmp_path):
    """Dropping the sampler package from `generate` is reported, naming the files it holds."""
    for part in ("dspo", "stages"):
        shutil.copytree(REPO / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    spec = yaml.safe_load((REPO / "dvc.yaml").read_text())
    spec["stages"]["generate"]["do"]["deps"].remove("dspo/learners/dspo/diffusion")
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    from dvc.repo import Repo

    Repo.init(str(tmp_path), no_scm=True).close()
    stage_deps.direct_imports.cache_clear()
    missing = stage_deps.missing_deps(tmp_path)
    seeds = yaml.safe_load((REPO / "params.yaml").read_text())["seeds"]["learner"]
    assert set(missing) == {f"generate@{s}" for s in seeds}
    assert "dspo/learners/dspo/diffusion/sampling.py" in missing[f"generate@{seeds[0]}"]
    assert "dspo/learners/dspo/diffusion/model.py" in missing[f"generate@{seeds[0]}"]


def test_closure_follows_imports_inside_functions():
    closure = stage_deps.closure({"dspo/evaluation/policies.py"})
    assert "dspo/learners/baselines/cdt_v.py" in closure  # imported lazily, for CDT-V checkpoints only
    assert "dspo/learners/bc.py" not in closure
    assert "dspo/learners/bc.py" in stage_deps.closure({"stages/train_bc.py"})

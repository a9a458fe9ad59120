"""`make repro`'s driver: chains of a seed's stages as units, only what is stale, then `dvc repro` restores it all."""
import json
import subprocess
import sys

import pytest
import yaml

from dspo.suite.plan import chains, downstream, expand_stages, plan_task, stage_family
from tests.conftest import REPO
from tests.test_dag import expanded_stages

PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())
SPEC = yaml.safe_load((REPO / "dvc.yaml").read_text())


def test_stage_paths_are_resolved_as_dvc_resolves_them():
    ours, dvcs = expand_stages(SPEC, PARAMS), expanded_stages()
    assert list(ours) and sorted(ours) == sorted(dvcs)
    for name, (deps, outs) in ours.items():
        assert (deps, outs) == (dvcs[name]["deps"], dvcs[name]["outs"]), name


def test_chain_units_split_each_seed_into_parts_that_exchange_no_file():
    by_seed = {u.name: set(u.targets) for u in plan_task("BallCircle", PARAMS, SPEC, "seed")}
    units = plan_task("BallCircle", PARAMS, SPEC, "chain")
    paths = expand_stages(SPEC, PARAMS)
    assert len({u.name for u in units}) == len(units) and units[0].name == "data" and units[-1].name == "report"
    for seed_unit, targets in by_seed.items():
        if seed_unit.startswith(("learner-", "baseline-")):
            parts = [u for u in units if u.name.startswith(seed_unit + ".")]
            assert set().union(*(u.targets for u in parts)) == targets and sum(len(u.targets) for u in parts) == len(targets)
            for a in parts:
                for b in parts:  # no unit reads what another unit of the same seed writes
                    assert a is b or not downstream({t: paths[t] for t in a.targets + b.targets}, set(a.targets)) & set(b.targets)
    names = {u.name for u in units}
    assert {"learner-0.train_bc@bc_all", "learner-0.train_bc@bc_safe", "learner-0.train_discriminator",
            "learner-0.analysis_oracle_diffusion", "baseline-0.train_baseline@cql", "baseline-0.train_rgm"} <= names
    rgm = next(u for u in units if u.name == "baseline-0.train_rgm")
    assert {"train_cdt_v@0", "evaluate_baseline@cdt_v-0"} <= set(rgm.targets)  # CDT-V reads RGM's correction


def test_units_start_longest_first_by_the_measured_stage_times():
    cost = {"train_baseline@cql": 900.0, "train_bc@bc_safe": 1.0, "a": 2.0, "b": 2.0, "c": 2.0}  # others: median 2
    units = plan_task("BallCircle", PARAMS, SPEC, "chain", cost)
    assert units[1].name == "baseline-0.train_baseline@cql"
    assert [u.name for u in units[-1 - len(PARAMS["seeds"]["learner"]):-1]] == [
        f"learner-{s}.train_bc@bc_safe" for s in PARAMS["seeds"]["learner"]]
    assert stage_family("train_bc@bc_all-2") == "train_bc@bc_all" and stage_family("analysis_fig4") == "analysis_fig4"
    assert chains(("a", "b"), {"a": ([], ["x/1"]), "b": (["x"], [])}) == [("a", "b")]


def test_what_must_rerun_is_the_stale_stage_and_everything_reading_it():
    paths = expand_stages(SPEC, PARAMS)
    after = downstream(paths, {"train_discriminator@0"})
    assert {"label_safety@0", "train_diffusion@0", "generate@0", "distill_bc@0", "evaluate@dspo-0",
            "analysis_labeling@0", "report"} <= after
    assert not after & {"train_discriminator@1", "analysis_oracle_diffusion@0", "train_bc@bc_safe-0", "collect"}
    assert downstream(paths, {"train_behavior"}) == set(paths) - {"analysis_toy2d"}


def run_repro(repo, *args):
    proc = subprocess.run([sys.executable, "scripts/repro.py", *args], cwd=repo, capture_output=True, text=True,
                          timeout=1800)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_fanned_out_repro_computes_each_stage_once_then_only_what_a_param_change_touches(tmp_path):
    from tests.test_smoke_pipeline import dvc, tiny_params
    from tests.test_suite import tiny_repo

    params = tiny_params()
    params["seeds"] = {"data": 0, "learner": [0], "baseline": [0]}
    repo = tiny_repo(tmp_path / "repo", params)

    out = run_repro(repo, "--jobs", "2")
    first = json.loads((repo / ".suite/repro/run.json").read_text())
    ran = [s for u in first["units"] for s in u["ran"]]
    assert len(ran) == len(set(ran)) and set(ran) == set(expand_stages(yaml.safe_load((repo / "dvc.yaml").read_text()),
                                                                        params)) - {"report"}, ran
    assert [ln for ln in out.splitlines() if ln.startswith("Running stage")] == ["Running stage 'report':"], out
    assert "up to date" in dvc(repo, "status")
    assert "every stage is up to date" in run_repro(repo)

    params["generate"]["guidance"] = 2.0  # both chains' generate stages and what reads them, nothing else
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run_repro(repo, "--jobs", "2")
    second = json.loads((repo / ".suite/repro/run.json").read_text())
    assert sorted(u["unit"] for u in second["units"]) == ["BallCircle/learner-0.analysis_oracle_diffusion",
                                                          "BallCircle/learner-0.train_discriminator"]
    assert sorted(s for u in second["units"] for s in u["ran"]) == sorted([
        "generate@0", "distill_bc@0", "evaluate@dspo-0", "analysis_oracle_generate@0", "analysis_oracle_distill@0",
        "evaluate@analysis_oracle_dspo-0"])
    assert "up to date" in dvc(repo, "status")


def test_pipeline_code_that_differs_from_head_is_run_serially_not_fanned_out(tmp_path, monkeypatch):
    """Units check out HEAD: with uncommitted pipeline code they would compute the wrong thing, so repro says
    why and runs `dvc repro` here instead; with nothing stale it runs nothing at all."""
    from dspo.suite import repro

    (tmp_path / "dspo").mkdir()
    (tmp_path / "dspo" / "x.py").write_text("a = 1\n")
    git = lambda *a: subprocess.run(["git", *a], cwd=tmp_path, check=True, capture_output=True)  # noqa: E731
    git("init", "-q")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    calls = []
    monkeypatch.setattr(repro, "serial_repro", lambda repo, reason: calls.append(reason) or 0)
    monkeypatch.setattr(repro, "stale_stages", lambda repo: set())
    assert repro.fanout_repro(tmp_path, tmp_path / "w")["stale"] == [] and calls == []
    monkeypatch.setattr(repro, "stale_stages", lambda repo: {"report"})
    (tmp_path / "dspo" / "x.py").write_text("a = 2\n")
    assert repro.fanout_repro(tmp_path, tmp_path / "w")["units"] == []
    assert calls == ["the pipeline code differs from HEAD (dspo/x.py, ...)"]
    monkeypatch.setattr(repro, "serial_repro", lambda repo, reason: 1)
    with pytest.raises(repro.DSPOError, match="dvc repro failed"):
        repro.fanout_repro(tmp_path, tmp_path / "w")

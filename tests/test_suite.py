"""The suite: its plan is DVC's own stage expansion cut into units, its tables follow the contract."""
import json

import pytest
import yaml

from dspo.core.errors import ParamError
from dspo.suite.plan import SuiteConfig, expand_stages, plan_task, seed_groups, task_params
from dspo.suite.tables import table1_markdown, write_suite_tables
from tests.conftest import REPO
from tests.test_dag import expanded_stages

PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())
SPEC = yaml.safe_load((REPO / "dvc.yaml").read_text())


def test_stage_names_match_dvcs_own_expansion():
    assert sorted(expand_stages(SPEC, PARAMS)) == sorted(expanded_stages())


def test_units_cover_every_stage_once_and_data_comes_first():
    names = list(expand_stages(SPEC, PARAMS))
    units = plan_task("BallCircle", PARAMS, SPEC)
    assert units[0].name == "data" and units[0].targets == ("collect",)
    assert units[-1].name == "report" and units[-1].targets == () and set(units[-1].after) == {u.name for u in units[:-1]}
    seeded = [t for u in units[1:-1] if u.name != "analyses" for t in u.targets]
    assert len(seeded) == len(set(seeded))
    groups = seed_groups(SPEC)
    assert sorted(seeded) == sorted(n for n in names if n.split("@")[0] in groups)
    learner = {u.name for u in units if u.name.startswith("learner-")}
    assert learner == {f"learner-{s}" for s in PARAMS["seeds"]["learner"]}
    one = next(u for u in units if u.name == "learner-1")
    assert "distill_bc@1" in one.targets and "evaluate@dspo-1" in one.targets and "evaluate@dspo-0" not in one.targets
    base = next(u for u in units if u.name == "baseline-0")
    assert "train_cdt_v@0" in base.targets and not any(t.startswith("train_bc") for t in base.targets)


def test_every_stage_but_the_report_is_computed_by_a_unit_before_the_report_unit():
    """Checked on DVC's own expansion: each stage is a unit's target or upstream of one (so the report unit,
    which runs on the driver under the Ray executor, restores everything and computes only the report)."""
    stages = expanded_stages()
    units = plan_task("BallCircle", PARAMS, SPEC)
    producer = {out: name for name, st in stages.items() for out in st["outs"]}

    def closure(names):
        seen, todo = set(), list(names)
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo += [producer[d] for d in stages[name]["deps"] if d in producer]
        return seen

    reached = closure([t for u in units[:-1] for t in u.targets])
    assert set(stages) - reached == {"report"}, set(stages) - reached - {"report"}
    analyses = next(u for u in units if u.name == "analyses")
    data = closure(units[0].targets)  # restored by every unit after the data unit
    assert not (closure(analyses.targets) - data) & closure([t for u in units[1:-1] if u is not analyses for t in u.targets])
    assert set(analyses.targets) == {"analysis_fig4", "analysis_toy2d"}


def test_task_params_apply_overrides_and_refuse_unknown_keys():
    out = task_params(PARAMS, "CarRun", {"behavior.env_steps": 5, "seeds.baseline": [0, 1]})
    assert out["task"] == "CarRun" and out["behavior"]["env_steps"] == 5 and out["seeds"]["baseline"] == [0, 1]
    assert PARAMS["task"] == "BallCircle" and PARAMS["behavior"]["env_steps"] != 5  # the base is untouched
    with pytest.raises(ParamError, match="behavior.env_step"):
        task_params(PARAMS, "CarRun", {"behavior.env_step": 5})


def test_task_params_add_entries_only_beneath_per_algo_mappings():
    base = yaml.safe_load(yaml.safe_dump(PARAMS))
    base["bc"]["per_algo"] = {"bc_safe": {"steps": 7}}  # independent of what params.yaml has tuned
    out = task_params(base, "BallCircle", {"bc.per_algo.dspo.steps": 5000, "bc.per_algo.bc_all": {"lr": 0.01},
                                           "bc.per_algo.bc_safe.lr": 0.5})
    assert out["bc"]["per_algo"]["dspo"] == {"steps": 5000} and out["bc"]["per_algo"]["bc_all"] == {"lr": 0.01}
    assert out["bc"]["per_algo"]["bc_safe"] == {"steps": 7, "lr": 0.5}  # an existing entry gains a key, keeps its own
    assert base["bc"]["per_algo"] == {"bc_safe": {"steps": 7}}  # the base is untouched
    for bad in ("bc.per_algoo.dspo.steps", "bc.nonsense.dspo", "disc.steps.x"):
        with pytest.raises(ParamError, match="is not a params key"):
            task_params(PARAMS, "BallCircle", {bad: 1})


def test_suite_config_refuses_unknown_tasks_and_stray_overrides():
    base = dict(PARAMS["suite"])
    with pytest.raises(ParamError, match="unknown task 'BallSquare'"):
        SuiteConfig.from_section({**base, "tasks": ["BallSquare"]})
    with pytest.raises(ParamError, match="not in suite.tasks"):
        SuiteConfig.from_section({**base, "tasks": ["BallCircle"], "overrides": {"CarRun": {}}})


def fake_task(tmp_path, task, rewards, costs):
    rows = []
    for algo, role in (("bc_safe", "baseline"), ("dspo", "method"), ("analysis_oracle_dspo", "analysis")):
        r, c = rewards[algo], costs[algo]
        rows.append({"task": task, "algo": algo, "name": algo, "role": role, "seeds": [0, 1],
                     "episodes_per_seed": 50, "reward_mean": sum(r) / 2, "reward_ci": [min(r), max(r)],
                     "cost_mean": sum(c) / 2, "cost_ci": [min(c), max(c)],
                     "safe_seed_fraction": sum(x <= 1 for x in c) / 2, "safe": sum(c) / 2 <= 1,
                     "reward_per_seed": r, "cost_per_seed": c, "raw_reward_mean": 1.0, "raw_cost_mean": 1.0})
    comps = [{"task": task, "algo": "dspo", "versus": "bc_safe", "poi": 0.75, "poi_ci": [0.5, 1.0],
              "versus_safe": True, "seeds": [2, 2]}]
    d = tmp_path / task
    d.mkdir()
    (d / "results.json").write_text(json.dumps({"task": task, "eval_block": "test", "episodes_per_seed": 50,
                                                "rows": rows, "comparisons": comps}))
    (d / "labeling.json").write_text(json.dumps({
        "task": task, "seeds": [0, 1], "auroc": 0.8, "auroc_ci": [0.7, 0.9], "auroc_within_agent": 0.7, "f1": 0.5,
        "pearson_return": 0.1, "yardsticks": {"-return": 0.79}}))
    return d


def test_suite_tables_follow_the_contract(tmp_path):
    dirs = {"BallCircle": fake_task(tmp_path, "BallCircle", {"bc_safe": [0.4, 0.5], "dspo": [0.6, 0.7],
                                                             "analysis_oracle_dspo": [0.9, 0.9]},
                                    {"bc_safe": [0.2, 0.3], "dspo": [0.5, 0.9], "analysis_oracle_dspo": [0.1, 0.1]}),
            "CarRun": fake_task(tmp_path, "CarRun", {"bc_safe": [0.4, 0.5], "dspo": [0.8, 0.9],
                                                     "analysis_oracle_dspo": [0.3, 0.3]},
                                {"bc_safe": [0.2, 0.3], "dspo": [1.5, 2.5], "analysis_oracle_dspo": [0.1, 0.1]})}
    out = tmp_path / "suite"
    t1, t2 = write_suite_tables(dirs, out)
    saved = json.loads((out / "table1.json").read_text())
    assert saved["eval_block"] == "test" and saved["episodes_per_seed"] == 50
    for row in saved["rows"]:
        assert {"task", "algo", "seeds", "reward_mean", "reward_ci", "cost_mean", "cost_ci",
                "safe_seed_fraction"} <= set(row)
    t2_rows = json.loads((out / "table2.json").read_text())["rows"]
    assert [r["task"] for r in t2_rows] == ["BallCircle", "CarRun"]
    assert {"auroc", "auroc_within_agent", "f1", "pearson_return", "yardsticks"} <= set(t2_rows[0])
    md = table1_markdown(t1)
    line = {}
    for ln in md.splitlines():  # the first table's rows (the tuning-budget table repeats the names)
        if ln.startswith("| "):
            line.setdefault(ln.split("|")[1].strip(), ln)
    assert "**0.650" in line["dspo"]  # best safe on BallCircle
    assert "2.00 ✗" in line["dspo"] and "**0.450" in line["bc_safe"]  # CarRun: DSPO unsafe, BC-Safe best safe
    assert "**" not in line["analysis_oracle_dspo (analysis)"]  # an analysis is never bold
    assert (out / "figure.png").stat().st_size > 5000 and (out / "table2.md").exists()


def test_table1_counts_each_algorithms_tuning_configurations(tmp_path):
    """The budget a reader compares: the configurations of an algorithm's grid reports, 1 without one, per task."""
    dirs = {"BallCircle": fake_task(tmp_path, "BallCircle", {"bc_safe": [0.4, 0.5], "dspo": [0.6, 0.7],
                                                             "analysis_oracle_dspo": [0.9, 0.9]},
                                    {"bc_safe": [0.2, 0.3], "dspo": [0.5, 0.9], "analysis_oracle_dspo": [0.1, 0.1]})}
    tuning = tmp_path / "tuning" / "BallCircle"
    tuning.mkdir(parents=True)
    for stem, budget in (("dspo--generate.keep_fraction", 3), ("dspo--disc.backbone", 2), ("bc_safe--bc.steps", 4),
                         ("bc_all_extra--bc.steps", 9)):  # a name that only starts like an algorithm is not counted
        rows = [{"config": f"{stem}={i}"} for i in range(budget)]
        (tuning / f"{stem}.json").write_text(json.dumps({"budget": budget, "rows": rows}))
    t1, _ = write_suite_tables(dirs, tmp_path / "suite", tmp_path / "tuning")
    assert {r["algo"]: r["tuning_configs"] for r in t1["rows"]} == {"bc_safe": 4, "dspo": 5, "analysis_oracle_dspo": 1}
    md = table1_markdown(t1)
    assert "| dspo | 5 |" in md and "| bc_safe | 4 |" in md
    t1_none, _ = write_suite_tables(dirs, tmp_path / "suite2")
    assert {r["tuning_configs"] for r in t1_none["rows"]} == {1}


def test_table1_marks_columns_that_ran_at_other_params(tmp_path):
    """A column made at older defaults is flagged (†) and its moved keys named; the suite's own section is ignored."""
    rewards = {"bc_safe": [0.4, 0.5], "dspo": [0.6, 0.7], "analysis_oracle_dspo": [0.9, 0.9]}
    costs = {"bc_safe": [0.2, 0.3], "dspo": [0.5, 0.9], "analysis_oracle_dspo": [0.1, 0.1]}
    dirs = {t: fake_task(tmp_path, t, rewards, costs) for t in ("BallCircle", "CarRun")}
    now = {"disc": {"scorer": "rgm", "lr": 0.001}, "distill": {"labeled_share": 0.7}, "suite": {"jobs": 2}}
    old = {"disc": {"scorer": "discriminator", "lr": 0.001}, "suite": {"jobs": 1}}
    for task, ran in (("BallCircle", {**now, "suite": {"jobs": 1}}), ("CarRun", old)):
        (dirs[task] / "params.yaml").write_text(yaml.safe_dump(ran))
        (dirs[task] / "run.json").write_text(json.dumps({"commit": f"{task[:4].lower()}1234567"}))
    t1, _ = write_suite_tables(dirs, tmp_path / "suite", current_params={t: now for t in dirs})
    assert t1["provenance"]["BallCircle"] == {"commit": "ball1234567", "params_drift": []}
    assert t1["provenance"]["CarRun"]["params_drift"] == ["disc.scorer", "distill.labeled_share"]
    md = table1_markdown(t1)
    assert "CarRun † reward" in md and "BallCircle † reward" not in md
    assert "| BallCircle | ball1234 | as now |" in md
    assert "| CarRun † | carr1234 | 2 differ: `disc.scorer`, `distill.labeled_share` |" in md
    t1_unknown, _ = write_suite_tables(dirs, tmp_path / "suite2")  # without today's params nothing is claimed
    assert "†" not in table1_markdown(t1_unknown)
    assert t1_unknown["provenance"]["CarRun"]["params_drift"] is None


def run_suite_cli(repo, *args: str) -> dict:
    """`scripts/suite.py` in `repo`; returns its run.json."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "scripts/suite.py", *args], cwd=repo, capture_output=True, text=True,
                          timeout=1800)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads((repo / "reports/suite/run.json").read_text())


def table_rows(repo) -> list[dict]:
    return json.loads((repo / "reports/suite/table1.json").read_text())["rows"]


def tiny_repo(repo, params: dict):
    """`repo`: a committed git + DVC project of this package's pipeline with `params` (the suite and `make
    repro` run HEAD of a real repository)."""
    import shutil
    import subprocess

    from tests.test_smoke_pipeline import dvc

    repo.mkdir()
    for item in ("dspo", "stages", "scripts", "dvc.yaml", ".gitignore", ".dvcignore"):
        src = REPO / item
        (shutil.copytree(src, repo / item, ignore=shutil.ignore_patterns("__pycache__")) if src.is_dir()
         else shutil.copy(src, repo / item))
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git = lambda *a: subprocess.run(["git", *a], cwd=repo, check=True, capture_output=True)  # noqa: E731
    git("init", "-q")
    dvc(repo, "init", "-q", "-f")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny")
    return repo


@pytest.fixture(scope="module")
def tiny_suite(tmp_path_factory):
    """A committed tiny project of two tasks (BallRun with an override), its suite run once with the local
    executor (2 units at once); returns (repo, run.json)."""
    from tests.test_smoke_pipeline import tiny_params

    params = tiny_params()
    params["seeds"] = {"data": 0, "learner": [0], "baseline": [0]}
    params["suite"] = {"tasks": ["BallCircle", "BallRun"], "jobs": 2, "units": "seed",
                       "overrides": {"BallRun": {"bc.steps": 100}}}
    repo = tiny_repo(tmp_path_factory.mktemp("suite") / "repo", params)
    return repo, run_suite_cli(repo)


@pytest.mark.slow
def test_suite_end_to_end_on_two_tiny_tasks_reuses_everything_on_rerun(tiny_suite):
    """Two tasks through real worktrees, fan-out and the shared run-cache; a rerun and the main workspace's
    `dvc repro` recompute nothing, and the main workspace's table equals the suite's."""
    from tests.test_smoke_pipeline import dvc

    repo, first = tiny_suite
    assert first["finished"] == ["BallCircle", "BallRun"] and first["threads_per_job"] >= 1
    assert all(u["ok"] for u in first["units"]) and sum(u["stages_run"] for u in first["units"]) > 0
    table = json.loads((repo / "reports/suite/table1.json").read_text())
    assert table["eval_block"] == "test" and table["episodes_per_seed"] == 3
    assert {(r["task"], r["algo"]) for r in table["rows"]} >= {("BallRun", "dspo"), ("BallCircle", "bc_safe")}
    assert yaml.safe_load((repo / "reports/suite/BallRun/params.yaml").read_text())["bc"]["steps"] == 100
    own = json.loads((repo / "reports/suite/BallRun/run.json").read_text())
    assert own["tasks"] == ["BallRun"] and {u["unit"].split("/")[0] for u in own["units"]} == {"BallRun"}
    assert (repo / "reports/suite/figure.png").exists() and (repo / "reports/suite/table2.md").exists()
    assert not (repo / ".suite/work/BallCircle").exists() or not any((repo / ".suite/work/BallCircle").iterdir())

    again = run_suite_cli(repo)  # every stage restored from the run-cache; only the cheap report (its tables
    ran = [s for u in again["units"] for s in u["ran"]]  # are git-tracked `cache: false` outs) is computed again
    assert set(ran) == {"report"} and sum(u["stages_restored"] for u in again["units"]) > 0, ran

    out = dvc(repo, "repro")  # the main workspace (BallCircle) restores what the suite computed
    assert [ln for ln in out.splitlines() if ln.startswith("Running stage")] == ["Running stage 'report':"], out
    main_table = json.loads((repo / "reports/BallCircle/results.json").read_text())
    suite_table = json.loads((repo / "reports/suite/BallCircle/results.json").read_text())
    assert main_table == suite_table


@pytest.mark.slow
def test_suite_on_a_local_ray_cluster_matches_the_local_executor_and_the_driver_restores_everything(
        tiny_suite, tmp_path):
    """The same tiny suite through `--executor ray` (a 2-CPU Ray cluster started here, units cloning a bare git
    remote and sharing only a DVC remote): the tables equal the local executor's, and a driver with an empty
    cache gets every stage back from the DVC remote (`dvc repro --pull` trains nothing)."""
    import shutil
    import subprocess

    from tests.test_smoke_pipeline import dvc

    local_repo, _ = tiny_suite
    origin, repo, remote = tmp_path / "origin.git", tmp_path / "driver", tmp_path / "dvc-remote"
    subprocess.run(["git", "clone", "-q", "--bare", str(local_repo), str(origin)], check=True)
    subprocess.run(["git", "clone", "-q", str(origin), str(repo)], check=True)  # nothing of local_repo's cache

    run = run_suite_cli(repo, "--executor", "ray", "--address", "local", "--cores", "2", "--dvc-remote", str(remote))
    assert run["executor"] == "ray" and run["finished"] == ["BallCircle", "BallRun"], run
    ray_units = [u for u in run["units"] if not u["unit"].endswith("/report")]
    assert all(u["ok"] for u in run["units"]) and sum(u["stages_run"] for u in ray_units) > 0
    assert all(set(u["ran"]) <= {"report"} for u in run["units"] if u["unit"].endswith("/report")), run["units"]
    assert table_rows(repo) == table_rows(local_repo)  # same commit, params and seeds -> same numbers

    shutil.rmtree(repo / ".dvc" / "cache")  # a second driver run with nothing local: all from the remote
    (repo / ".dvc" / "config.local").write_text(f"[core]\n    remote = suite\n['remote \"suite\"']\n"
                                                  f"    url = {remote}\n")
    out = dvc(repo, "repro", "--pull")
    ran = [ln for ln in out.splitlines() if ln.startswith("Running stage")]
    assert set(ran) <= {"Running stage 'report':"} and "is cached - skipping run" in out, out
    assert json.loads((repo / "reports/BallCircle/results.json").read_text()) == \
        json.loads((local_repo / "reports/suite/BallCircle/results.json").read_text())


def test_the_ray_executor_refuses_before_any_work_what_its_units_could_not_use(tmp_path):
    """Ray units clone a pushed commit and share a DVC remote: no origin, an unpushed commit, no DVC remote or
    an unknown executor are refused with what to do, before Ray starts."""
    import shutil
    import subprocess

    from dspo.core.errors import DSPOError
    from dspo.suite.run import run_suite
    from tests.test_smoke_pipeline import dvc

    repo = tmp_path / "repo"
    repo.mkdir()
    for item in ("dvc.yaml", "params.yaml"):
        shutil.copy(REPO / item, repo / item)
    git = lambda *a, cwd=repo: subprocess.run(["git", *a], cwd=cwd, check=True, capture_output=True)  # noqa: E731
    git("init", "-q")
    dvc(repo, "init", "-q")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    git("init", "-q", "--bare", str(tmp_path / "empty.git"), cwd=tmp_path)
    go = lambda **kw: run_suite(repo, repo / "params.yaml", tmp_path / "out", tmp_path / "work",  # noqa: E731
                                tasks=["BallCircle"], **kw)
    with pytest.raises(ParamError, match="unknown executor 'slurm'"):
        go(executor="slurm")
    with pytest.raises(ParamError, match="no `origin`; pass --git-remote"):
        go(executor="ray")
    with pytest.raises(DSPOError, match="is not on the git remote .*push it first"):
        go(executor="ray", git_url=str(tmp_path / "empty.git"), remote_url=str(tmp_path / "remote"))
    with pytest.raises(ParamError, match="needs a DVC remote"):
        go(executor="ray", git_url=str(tmp_path / "empty.git"))
    with pytest.raises(ParamError, match="must be >= 0"):
        go(executor="ray", gpus_per_job=-1)
    assert not (tmp_path / "work").exists()  # nothing was started


def test_push_run_cache_makes_a_stage_with_a_git_tracked_metric_restorable_in_another_clone(tmp_path):
    """DVC's own `dvc push --run-cache` leaves out the objects of `cache: false` outs, so such a stage reruns
    elsewhere; `push_run_cache` pushes them and the other clone restores the stage instead."""
    import subprocess
    import sys

    from tests.test_smoke_pipeline import dvc

    a, remote = tmp_path / "a", tmp_path / "remote"
    a.mkdir()
    git = lambda *args, cwd=a: subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)  # noqa
    git("init", "-q")
    dvc(a, "init", "-q")
    (a / "dep.txt").write_text("1\n")
    (a / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"s": {
        "cmd": "python -c \"import json; open('out.txt', 'w').write('x'); json.dump({'m': 1}, open('m.json', 'w'))\"",
        "deps": ["dep.txt"], "outs": ["out.txt"], "metrics": [{"m.json": {"cache": False}}]}}}))
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    dvc(a, "repro")
    config = f"[core]\n    remote = r\n['remote \"r\"']\n    url = {remote}\n"

    def other_clone(name: str) -> str:
        git("clone", "-q", str(a), str(tmp_path / name), cwd=tmp_path)
        (tmp_path / name / ".dvc" / "config.local").write_text(config)
        return dvc(tmp_path / name, "repro", "--pull")

    (a / ".dvc" / "config.local").write_text(config)
    dvc(a, "push", "--run-cache")
    assert "Running stage 's'" in other_clone("b")  # DVC alone: the metric is missing, the stage reruns
    subprocess.run([sys.executable, "-c", "from dspo.suite.ray_exec import push_run_cache; push_run_cache()"],
                   cwd=a, check=True, capture_output=True, env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
    out = other_clone("c")
    assert "Stage 's' is cached - skipping run" in out and "Running stage" not in out, out
    assert (tmp_path / "c" / "m.json").read_text() == '{"m": 1}'


def test_a_failed_ray_unit_raises_with_its_log_and_leaves_no_workspace(tmp_path, monkeypatch):
    """Ray retries a unit only if its body raises: a clone that fails must raise `UnitFailed` naming the unit
    and carrying the end of its log, and the unit's temporary clone must be gone."""
    import tempfile

    from dspo.suite.plan import Unit
    from dspo.suite.ray_exec import UnitFailed, remote_unit

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    unit = Unit("BallCircle", "learner-0", ("train_bc@bc_all-0",), after=("data",))
    with pytest.raises(UnitFailed, match=r"(?s)BallCircle/learner-0 failed \(exit \d+\):.*git clone"):
        remote_unit(unit, PARAMS, str(tmp_path / "no-such-repo.git"), "0" * 40, str(tmp_path / "remote"), 1)
    assert list(tmp_path.iterdir()) == []


def test_the_project_names_a_default_dvc_remote():
    """`dvc pull` / `dvc push --run-cache` and the Ray executor need one; a folder beside the checkout by default."""
    from dspo.suite.run import dvc_remote_url

    assert dvc_remote_url(REPO) == str((REPO.parent / "dspo-dvc-remote").resolve())


def test_an_executors_thread_budget_reaches_torch_and_the_worker_pools(monkeypatch):
    """`DSPO_THREADS` (set per unit by the executor) caps torch's threads and the rollout/behavior processes."""
    import subprocess
    import sys

    from dspo.core.cli import cpu_budget
    from dspo.core.errors import DSPOError

    code = ("import torch; from dspo.core.cli import limit_threads, cpu_budget; limit_threads(); "
            "print(torch.get_num_threads(), cpu_budget())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env={**__import__("os").environ, "DSPO_THREADS": "1"}, timeout=120)
    assert out.stdout.split() == ["1", "1"], out.stderr
    monkeypatch.setenv("DSPO_THREADS", "0")
    with pytest.raises(DSPOError, match="DSPO_THREADS='0' must be a positive integer"):
        cpu_budget()
    monkeypatch.delenv("DSPO_THREADS")
    assert cpu_budget() >= 1


def test_stages_in_log_reads_what_dvc_computed_and_what_it_restored():
    """Both executors report a unit's work from its `dvc repro` log, so the parsing is one function."""
    from dspo.suite.local import stages_in_log

    log = ("Running stage 'collect':\n> python stages/collect.py\n"
           "Stage 'train_behavior' is cached - skipping run, checking out outputs\n"
           "Running stage 'train_bc@bc_safe-0':\n"
           "Stage 'evaluate@bc_safe-0' is cached - skipping run, checking out outputs\n"
           "Stage 'report' didn't change, skipping\n")
    assert stages_in_log(log) == (["collect", "train_bc@bc_safe-0"], 2)
    assert stages_in_log("") == ([], 0)


def test_tuning_grid_is_the_cartesian_product_and_the_rule_prefers_safe_reward():
    """One rule for every algorithm: best mean tuning reward among safe configs, else the lowest cost."""
    from dspo.suite.tune import parse_grid, select, tuning_markdown, tuning_stem

    configs = parse_grid(["distill.generated_share=0.25,null", "generate.guidance=1.0,1.5"])
    assert [c.overrides for c in configs] == [
        {"distill.generated_share": 0.25, "generate.guidance": 1.0}, {"distill.generated_share": 0.25, "generate.guidance": 1.5},
        {"distill.generated_share": None, "generate.guidance": 1.0}, {"distill.generated_share": None, "generate.guidance": 1.5}]
    assert parse_grid([])[0].overrides == {}
    assert tuning_stem("dspo", configs) == "dspo--distill.generated_share+generate.guidance"  # one report per grid
    assert tuning_stem("bc_safe", parse_grid([])) == "bc_safe"
    with pytest.raises(ParamError, match="expected section.key=value1,value2"):
        parse_grid(["guidance=1"])
    rows = [{"config": "a", "reward_mean": 0.9, "cost_mean": 1.4, "safe_seed_fraction": 0.0},
            {"config": "b", "reward_mean": 0.5, "cost_mean": 0.2, "safe_seed_fraction": 1.0},
            {"config": "c", "reward_mean": 0.6, "cost_mean": 0.9, "safe_seed_fraction": 2 / 3}]
    assert select(rows)["config"] == "b"  # safe on every seed beats a higher reward safe only on average
    assert select(rows[::2])["config"] == "c"
    assert select([rows[0], {"config": "d", "reward_mean": 0.1, "cost_mean": 3.0, "safe_seed_fraction": 0.0}])["config"] == "a"
    result = {"task": "T", "algo": "dspo", "budget": 3, "commit": "0" * 40, "rule": "r", "chosen": "c",
              "rows": [{**r, "per_seed": [{"reward": r["reward_mean"], "cost": r["cost_mean"]}]} for r in rows]}
    assert "| **c** | 0.600 | 0.90 | 0.67 |" in tuning_markdown(result)
    assert "Wall time" not in tuning_markdown(result)  # an older report, before configurations ran in parallel
    timed = {**result, "jobs": 2, "threads": 1, "wall_seconds": 100.0,
             "rows": [{**r, "seconds": 60.0} for r in result["rows"]]}
    assert "Wall time 100 s, 2 configuration(s) at once" in tuning_markdown(timed)
    assert "sum to 180 s" in tuning_markdown(timed)



def test_tuning_reports_keep_every_dotted_key_of_their_stem(tmp_path):
    """Path.with_suffix would cut `bc.steps+bc.weight_decay` at its last dot: two grids would share a report."""
    from dspo.suite.tune import parse_grid, tuning_stem, write_report

    stem = tuning_stem("bc_safe", parse_grid(["bc.steps=1,2", "bc.weight_decay=0.1,0.2"]))
    paths = write_report({"rows": []}, tmp_path / stem, "# report\n")
    assert [p.name for p in paths] == ["bc_safe--bc.steps+bc.weight_decay.json", "bc_safe--bc.steps+bc.weight_decay.md"]
    assert json.loads(paths[0].read_text()) == {"rows": []} and paths[1].read_text() == "# report\n"


def test_every_key_value_option_is_checked_by_one_parser():
    """--set, --grid and --control share one `section.key=value` check; the error names the option and the item."""
    from dspo.suite.plan import parse_sets
    from dspo.suite.tune import parse_controls, parse_grid

    assert parse_sets(["disc.mi_weight=0.5", " generate.keep_fraction=null"]) == {
        "disc.mi_weight": 0.5, "generate.keep_fraction": None}
    for bad in ["mi_weight=0.5", "disc.mi_weight", "disc.mi_weight="]:
        with pytest.raises(ParamError, match=r"--set .*expected section.key=value"):
            parse_sets([bad])
        with pytest.raises(ParamError, match=r"--grid .*expected section.key=value1"):
            parse_grid([bad])
        with pytest.raises(ParamError, match=r"--control .*expected section.key=value"):
            parse_controls(["generate.guidance=0;" + bad])


def test_controls_run_beside_the_reference_and_compare_over_seeds():
    """Controls are read on the test block next to params.yaml, with P(reference > control) over seeds."""
    import numpy as np

    from dspo.suite.tune import REFERENCE, compare_controls, controls_markdown, parse_controls

    configs = parse_controls(["generate.guidance=0", "distill.source=labeled_safe;distill.generated_share=null"])
    assert [c.name for c in configs][0] == REFERENCE and configs[0].overrides == {}
    assert configs[1].overrides == {"generate.guidance": 0}
    assert configs[2].overrides == {"distill.source": "labeled_safe", "distill.generated_share": None}
    with pytest.raises(ParamError, match="expected section.key=value"):
        parse_controls(["guidance=0"])

    def row(name, rewards):
        per_seed = [{"seed": i, "reward": r, "cost": 0.5} for i, r in enumerate(rewards)]
        return {"config": name, "reward_mean": float(np.mean(rewards)), "cost_mean": 0.5, "safe_seed_fraction": 1.0,
                "per_seed": per_seed}

    rows = compare_controls([row(REFERENCE, [0.5, 0.6, 0.7]), row("worse", [0.1, 0.2, 0.3]),
                             row("better", [0.8, 0.9, 1.0])])
    assert rows[0]["p_reference_better"] is None
    assert rows[1]["p_reference_better"][0] == 1.0 and rows[2]["p_reference_better"][0] == 0.0
    lo, hi = rows[1]["p_reference_better"][1:]
    assert 0.0 <= lo <= 1.0 <= hi + 1e-12
    text = controls_markdown({"task": "T", "algo": "dspo", "commit": "0" * 40, "rows": rows})
    assert "| worse | 0.200 | 0.50 | 1.00 | 1.00 [" in text and "| reference |" in text


def test_tuning_refuses_unknown_algorithms_and_keys_before_any_run(tmp_path):
    from dspo.suite.tune import parse_grid, run_tuning

    go = lambda algo, grid: run_tuning(REPO, REPO / "params.yaml", "BallCircle", algo, parse_grid(grid),  # noqa: E731
                                       tmp_path / "w", tmp_path / "out", "0" * 40, tmp_path / "cache", 1)
    with pytest.raises(ParamError, match="--algo 'ppo' is not an algorithm"):
        go("ppo", [])
    with pytest.raises(ParamError, match="'generate.nonsense' is not a params key"):
        go("dspo", ["generate.nonsense=1"])
    with pytest.raises(ParamError, match="not trained by BC"):  # an added bc.per_algo entry is checked up front
        go("dspo", ["bc.per_algo.td3bc.steps=5"])
    with pytest.raises(ParamError, match="stepz"):
        go("dspo", ["bc.per_algo.dspo.stepz=5"])
    with pytest.raises(ParamError, match="configuration generate.guidance=-1.*generate.guidance=-1"):  # any section's values
        go("dspo", ["generate.guidance=1,-1"])
    with pytest.raises(ParamError, match="diffusion.batch_size"):
        go("analysis_oracle_dspo", ["diffusion.batch_size=0"])
    assert not (tmp_path / "w").exists()


def test_the_analyses_figures_are_copied_out_of_the_units_workspace(tmp_path):
    """fig4 lives only in the analyses unit's workspace: the suite copies it under reports/suite/<task>/."""
    from dspo.suite.run import copy_analysis_reports

    src = tmp_path / "ws" / "reports" / "T"
    (src / "fig4").mkdir(parents=True)
    (src / "fig4" / "fig4.json").write_text("{}")
    (src / "train").mkdir()
    copied = copy_analysis_reports(src, tmp_path / "out" / "T")
    assert copied == [tmp_path / "out" / "T" / "fig4"] and (tmp_path / "out/T/fig4/fig4.json").read_text() == "{}"
    assert not (tmp_path / "out/T/train").exists()
    assert copy_analysis_reports(tmp_path / "missing", tmp_path / "out2") == []


def test_only_keeps_the_asked_unit_kinds_and_drops_waits_on_the_others():
    """`--only data` fetches datasets alone; `--only learner` units no longer wait on a data unit that is not run."""
    from dspo.suite.run import only_kinds

    units = plan_task("BallCircle", PARAMS, SPEC)
    assert [u.name for u in only_kinds(units, ["data"])] == ["data"]
    learners = only_kinds(units, ["learner"])
    assert {u.name for u in learners} == {f"learner-{s}" for s in PARAMS["seeds"]["learner"]}
    assert all(u.after == () for u in learners)
    both = only_kinds(units, ["data", "learner"])
    assert all(u.after == ("data",) for u in both if u.name != "data")
    with pytest.raises(ParamError, match=r"--only \['models'\]: unit kinds are data, learner"):
        only_kinds(units, ["models"])


def test_a_lone_data_unit_gets_the_idle_job_slots_and_no_more(monkeypatch, tmp_path):
    """Slots are never oversubscribed: a data unit alone takes every core, two tasks' data units share them,
    and learners (whose float sums depend on threads) always keep cores // jobs."""
    import threading

    from dspo.suite import local
    from dspo.suite.plan import Unit

    lock, live, seen = threading.Lock(), [0], {}

    def fake_run_unit(repo, commit, unit, params, root, cache_dir, threads, keep=False, remote_url=None):
        with lock:
            live[0] += threads
            seen[unit.key] = (threads, live[0])
        import time
        time.sleep(0.05)
        with lock:
            live[0] -= threads
        return local.UnitResult(unit, 0, 0.05, [], 0, tmp_path / "log", tmp_path)

    monkeypatch.setattr(local, "run_unit", fake_run_unit)

    def task(name):
        return [Unit(name, "data", ("collect",)), Unit(name, "learner-0", ("x",), after=("data",)),
                Unit(name, "learner-1", ("y",), after=("data",)), Unit(name, "report", after=("learner-0", "learner-1"))]

    local.run_units(tmp_path, "c", task("A"), {"A": {}}, tmp_path, tmp_path, jobs=2, threads=1)
    assert seen["A/data"][0] == 2 and all(seen[f"A/{u}"][0] == 1 for u in ("learner-0", "learner-1", "report"))
    seen.clear()
    local.run_units(tmp_path, "c", task("A") + task("B"), {"A": {}, "B": {}}, tmp_path, tmp_path, jobs=4, threads=1)
    assert seen["A/data"][0] == 2 and seen["B/data"][0] == 2
    assert all(t == 1 for k, (t, _) in seen.items() if not k.endswith("/data"))
    assert max(peak for _, peak in seen.values()) <= 4


def test_repro_stage_timer_charges_each_stage_until_the_next_is_announced():
    """benchmarks/repro_stages.py: a stage's time runs to the next stage's line (ran or skipped) or the end."""
    from benchmarks.repro_stages import families, stage_times

    events = [(0.0, "Running stage 'train_behavior':"), (5.0, "> python stages/train_behavior.py"),
              (10.0, "Stage 'collect' is cached - skipping run, checking out outputs"),
              (12.0, "Running stage 'train_bc@bc_all-0':"), (15.0, "Running stage 'train_bc@bc_all-1':"),
              (21.0, "Stage 'report' didn't change, skipping")]
    times, skipped = stage_times(events, end=30.0)
    assert times == {"train_behavior": 10.0, "train_bc@bc_all-0": 3.0, "train_bc@bc_all-1": 6.0}
    assert skipped == ["collect", "report"]
    assert families(times) == {"train_behavior": (1, 10.0), "train_bc": (2, 9.0)}
    times, _ = stage_times(events[:1], end=4.0)  # a stage still running at the end is charged to the end
    assert times == {"train_behavior": 4.0}


def test_repro_stage_timer_sums_only_the_timings_logged_during_its_run(tmp_path):
    from benchmarks.repro_stages import logged_seconds

    log = tmp_path / "times.jsonl"
    assert logged_seconds(log, 0) == 0.0
    log.write_text('{"stage": "collect", "seconds": 5.0}\n{"stage": "train_bc@bc_all", "seconds": 2.5}\n'
                   '{"stage": "evaluate", "seconds": 1.25}\n')
    assert logged_seconds(log, 1) == 3.75


def test_tuning_runs_the_first_configuration_alone_then_the_rest_in_parallel_and_keeps_the_grid_order(
        tmp_path, monkeypatch):
    """The first configuration computes what the grid shares; the others run `jobs` at a time; rows in grid order."""
    import threading
    import time as _time

    from dspo.suite import tune
    from dspo.suite.local import UnitResult

    lock, state = threading.Lock(), {"now": 0, "peak_after_first": 0, "order": []}

    def fake_run_unit(repo, commit, unit, params, root, cache_dir, threads, keep=False):
        with lock:
            state["now"] += 1
            state["order"].append(unit.name)
            first_running = state["order"] == ["dspo-0"]
        _time.sleep(0.05 if first_running else 0.2)
        with lock:
            if not first_running:
                state["peak_after_first"] = max(state["peak_after_first"], state["now"])
            state["now"] -= 1
        return UnitResult(unit, 0, 0.1, [], 0, tmp_path / "log", tmp_path / unit.name)

    guidance = {f"dspo-{i}": g for i, g in enumerate([1.0, 1.5, 2.0, 3.0, 4.0])}
    monkeypatch.setattr(tune, "run_unit", fake_run_unit)
    monkeypatch.setattr(tune, "remove_workspace", lambda repo, ws: None)
    monkeypatch.setattr(tune, "block_row", lambda ws, task, algo, seeds, block: {
        "reward_mean": guidance[ws.name], "cost_mean": 0.5, "safe_seed_fraction": 1.0, "per_seed": []})
    configs = tune.parse_grid(["generate.guidance=1.0,1.5,2.0,3.0,4.0"])
    rows = tune.run_configs(REPO, REPO / "params.yaml", "BallCircle", "dspo", configs, tmp_path, "0" * 40,
                            tmp_path / "cache", 1, "tuning", "tune", jobs=2)
    assert state["order"][0] == "dspo-0"
    assert state["peak_after_first"] == 2  # two at once after the first, never more
    assert [r["reward_mean"] for r in rows] == [1.0, 1.5, 2.0, 3.0, 4.0]
    assert [r["config"] for r in rows] == [c.name for c in configs]
    with pytest.raises(ParamError, match="--jobs must be >= 1"):
        tune.run_configs(REPO, REPO / "params.yaml", "BallCircle", "dspo", configs, tmp_path, "0" * 40,
                         tmp_path / "cache", 1, "tuning", "tune", jobs=0)


def test_tuning_on_explicit_seeds_runs_every_configuration_on_them_and_names_its_own_report(tmp_path, monkeypatch):
    """`--seeds 0,1,2` for a baseline: every configuration evaluates those seeds (not seeds.baseline's one)."""
    from dspo.suite import tune
    from dspo.suite.local import UnitResult

    targets = []

    def fake_run_unit(repo, commit, unit, params, root, cache_dir, threads, keep=False):
        targets.append((unit.targets, params["seeds"]["baseline"], params["seeds"]["learner"]))
        return UnitResult(unit, 0, 0.1, [], 0, tmp_path / "log", tmp_path / unit.name)

    monkeypatch.setattr(tune, "run_unit", fake_run_unit)
    monkeypatch.setattr(tune, "remove_workspace", lambda repo, ws: None)
    monkeypatch.setattr(tune, "block_row", lambda ws, task, algo, seeds, block: {
        "reward_mean": 0.5, "cost_mean": 0.5, "safe_seed_fraction": 1.0, "per_seed": [{"seed": s} for s in seeds]})
    configs = tune.parse_grid(["dwbc.eta=0.1,0.3"])
    rows = tune.run_configs(REPO, REPO / "params.yaml", "BallCircle", "dwbc", configs, tmp_path, "0" * 40,
                            tmp_path / "cache", 1, "tuning", "tune", jobs=1, seeds=[0, 1, 2])
    learner = PARAMS["seeds"]["learner"]
    assert targets == [(tuple(f"evaluate_baseline@dwbc-{s}" for s in (0, 1, 2)), [0, 1, 2], learner)] * 2
    assert [[s["seed"] for s in r["per_seed"]] for r in rows] == [[0, 1, 2]] * 2
    assert tune.tuning_stem("dwbc", configs, [0, 1, 2]) == "dwbc--dwbc.eta--seeds0-1-2"
    assert tune.tuning_stem("dwbc", configs) == "dwbc--dwbc.eta"
    assert tune.parse_seeds("0,1,2") == [0, 1, 2]
    for bad in ([], [1, 1], [-1]):
        with pytest.raises(ParamError, match="--seeds must be distinct non-negative integers"):
            tune.run_configs(REPO, REPO / "params.yaml", "BallCircle", "dwbc", configs, tmp_path, "0" * 40,
                             tmp_path / "cache", 1, "tuning", "tune", seeds=bad)
    with pytest.raises(ParamError, match="expected comma-separated integers"):
        tune.parse_seeds("0;1")


def test_tuning_a_task_runs_it_as_the_suite_does_with_the_grid_on_top(tmp_path, monkeypatch):
    """A task with suite.overrides (MetaDrive's scripted drivers, one learner seed) is tuned on those settings;
    without them a tuning run would collect other data and train the wrong behavior agents."""
    from dspo.suite import tune
    from dspo.suite.local import UnitResult

    seen = []

    def fake_run_unit(repo, commit, unit, params, root, cache_dir, threads, keep=False):
        seen.append((unit.targets, params))
        return UnitResult(unit, 0, 0.1, [], 0, tmp_path / "log", tmp_path / unit.name)

    monkeypatch.setattr(tune, "run_unit", fake_run_unit)
    monkeypatch.setattr(tune, "remove_workspace", lambda repo, ws: None)
    monkeypatch.setattr(tune, "block_row", lambda ws, task, algo, seeds, block: {
        "reward_mean": 0.5, "cost_mean": 0.5, "safe_seed_fraction": 1.0, "per_seed": []})
    task = "MetaDrive-hardsparse"
    suite_over = PARAMS["suite"]["overrides"][task]
    configs = tune.parse_grid(["distill.learner=bc,dwbc", "seeds.learner=[1]"])
    tune.run_configs(REPO, REPO / "params.yaml", task, "dspo", configs, tmp_path, "0" * 40, tmp_path / "cache", 1,
                     "tuning", "tune", jobs=1)
    assert [targets for targets, _ in seen] == [("evaluate@dspo-1",)] * 2  # the grid's seeds.learner wins
    for (_, params), learner in zip(seen, ("bc", "dwbc")):
        assert params["task"] == task and params["distill"]["learner"] == learner
        assert params["behavior"]["agents"] == suite_over["behavior.agents"]
        assert params["collect"]["mix_pairs"] == suite_over["collect.mix_pairs"]
    seen.clear()
    tune.run_configs(REPO, REPO / "params.yaml", task, "dspo", tune.parse_grid([]), tmp_path, "0" * 40,
                     tmp_path / "cache", 1, "tuning", "tune", jobs=1)  # params.yaml as is: no grid key at all
    assert seen[0][1]["behavior"]["agents"] == suite_over["behavior.agents"]
    assert seen[0][0] == tuple(f"evaluate@dspo-{s}" for s in suite_over["seeds.learner"])  # the suite's seeds


def test_a_tuning_budget_counts_distinct_configurations_over_an_algorithms_grids(tmp_path):
    """The same grid rerun on more seeds is more evidence, not more configurations tried."""
    from dspo.suite.tables import tuning_budgets
    from dspo.suite.tune import write_report

    def report(stem, configs):
        write_report({"budget": len(configs), "rows": [{"config": c} for c in configs]}, tmp_path / "T" / stem, "")

    report("dwbc--dwbc.eta", ["dwbc.eta=0.1", "dwbc.eta=0.3"])
    report("dwbc--dwbc.eta--seeds0-1-2", ["dwbc.eta=0.1", "dwbc.eta=0.3"])
    report("dwbc--dwbc.alpha", ["dwbc.alpha=30.0"])
    assert tuning_budgets(tmp_path, "T", ["dwbc", "iql"]) == {"dwbc": 3, "iql": 1}

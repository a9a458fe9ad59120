"""Drive the suite: plan units per task, run them with an executor, collect each task's report, build the tables.

The suite runs a commit (HEAD), never uncommitted code: every unit checks that commit out, so what
the tables say can be rebuilt from the commit and the params. Per task, the report's files and the
task's `dvc.lock` and params are copied to `reports/suite/<task>/`, then Tables 1-2 and the figure
are built from those copies.
"""
from __future__ import annotations

import itertools
import json
import os
import shutil
import time
from pathlib import Path

import yaml

from dspo.core.artifacts import write_json
from dspo.core.config import load_params
from dspo.core.errors import DSPOError, ParamError
from dspo.suite.local import git, remove_workspace, run_units
from dspo.suite.plan import SuiteConfig, Unit, plan_task, task_params
from dspo.suite.tables import write_suite_tables

REPORT_FILES = ("results.json", "results.md", "results.png", "tuning.json", "tuning.md", "labeling.json",
                "labeling.md", "dataset.json", "dataset.png")
TRACKED_INPUTS = ("dspo", "stages", "dvc.yaml", "params.yaml")


def _resolve(value, params: dict):
    """`${a.b}` -> params["a"]["b"] (what dvc.yaml's matrix/foreach lists refer to); literals pass through."""
    if isinstance(value, str) and value.startswith("${") and value.endswith("}"):
        for key in value[2:-1].split("."):
            params = params[key]
        return params
    return value


def stage_names(dvc_spec: dict, params: dict) -> list[str]:
    """Stage names as DVC expands them: `name`, `name@item` (foreach), `name@v1-v2` (matrix, key order)."""
    names = []
    for name, body in dvc_spec["stages"].items():
        if "foreach" in body:
            names += [f"{name}@{item}" for item in _resolve(body["foreach"], params)]
        elif "matrix" in body:
            axes = [_resolve(v, params) for v in body["matrix"].values()]
            names += [f"{name}@" + "-".join(map(str, combo)) for combo in itertools.product(*axes)]
        else:
            names.append(name)
    return names


def check_clean(repo: Path) -> str:
    """The commit the suite runs; refuse when the pipeline's files differ from it."""
    dirty = git(repo, "status", "--porcelain", "--", *TRACKED_INPUTS)
    if dirty:
        raise DSPOError("the suite runs the committed pipeline, but these files differ from HEAD:\n" + dirty
                        + "\ncommit (or stash) them first")
    return git(repo, "rev-parse", "HEAD")


def cache_dir_of(repo: Path) -> Path:
    from dvc.repo import Repo

    with Repo(str(repo)) as r:
        return Path(r.cache.local_cache_dir)  # what `cache.dir` names (run-cache included)


def run_suite(repo: Path, params_path: Path, out_dir: Path, root: Path, tasks: list[str] | None = None,
              jobs: int | None = None, cores: int | None = None) -> dict:
    """Run every task of the suite and write the tables; returns the run summary (also `out_dir/run.json`)."""
    repo, out_dir, root = repo.resolve(), out_dir.resolve(), root.resolve()
    params = load_params(params_path)
    cfg = SuiteConfig.from_params(params, source=params_path)
    tasks = tasks or cfg.tasks
    unknown = sorted(set(tasks) - set(cfg.tasks))
    if unknown:
        raise ParamError(f"--task {unknown} not in suite.tasks {cfg.tasks}")
    jobs = jobs or cfg.jobs
    cores = cores or os.cpu_count() or 1
    threads = max(1, cores // jobs)
    commit = check_clean(repo)
    dvc_spec = yaml.safe_load((repo / "dvc.yaml").read_text())
    per_task = {t: task_params(params, t, cfg.overrides.get(t, {})) for t in tasks}
    units: list[Unit] = [u for t in tasks for u in plan_task(t, per_task[t], dvc_spec, stage_names(dvc_spec, per_task[t]))]
    cache = cache_dir_of(repo)
    start = time.perf_counter()
    results = run_units(repo, commit, units, per_task, root, cache, jobs, threads,
                        keep={u.key for u in units if u.name == "report"})
    wall = time.perf_counter() - start
    finished = {}
    for r in results:
        if r.unit.name == "report" and r.returncode == 0:
            dest = out_dir / r.unit.task
            dest.mkdir(parents=True, exist_ok=True)
            src = r.workspace / "reports" / r.unit.task
            for name in REPORT_FILES:
                if (src / name).exists():
                    shutil.copyfile(src / name, dest / name)
            shutil.copyfile(r.workspace / "dvc.lock", dest / "dvc.lock")
            (dest / "params.yaml").write_text(yaml.safe_dump(per_task[r.unit.task], sort_keys=False))
            finished[r.unit.task] = dest
            remove_workspace(repo, r.workspace)
    summary = {
        "commit": commit, "jobs": jobs, "threads_per_job": threads, "wall_seconds": round(wall, 1),
        "tasks": tasks, "finished": [t for t in tasks if t in finished],
        "units": [{"unit": r.unit.key, "ok": r.returncode == 0, "seconds": round(r.seconds, 1),
                   "stages_run": len(r.ran), "ran": r.ran, "stages_restored": r.restored, "log": os.path.relpath(r.log, repo)}
                  for r in results],
    }
    write_json(summary, out_dir / "run.json")
    # tables cover every suite task with a finished report under out_dir, so `--task X` adds X to the tables
    # instead of replacing them (a task's copy keeps its dvc.lock: which commit and params made it)
    ordered = {t: out_dir / t for t in cfg.tasks if t in finished or (out_dir / t / "results.json").exists()}
    if ordered:
        write_suite_tables(ordered, out_dir)
    failed = [u["unit"] for u in summary["units"] if not u["ok"]]
    if failed:
        raise DSPOError(f"suite units failed: {failed} (logs under {root / 'logs'}); tables cover "
                        f"{list(ordered) or 'no task'}. " + json.dumps({u['unit']: u['log'] for u in summary['units']
                                                                      if not u['ok']}))
    return summary

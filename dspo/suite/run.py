"""Drive the suite: plan units per task, run them with an executor, collect each task's report, build the tables.

The suite runs a commit (HEAD), never uncommitted code: every unit checks that commit out, so what
the tables say can be rebuilt from the commit and the params. Per task, the report's files and the
task's `dvc.lock` and params are copied to `reports/suite/<task>/`, then Tables 1-2 and the figure
are built from those copies.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import yaml

from dspo.core.artifacts import write_json
from dspo.core.config import load_params
from dspo.core.errors import DSPOError, ParamError
from dspo.suite.local import cache_dir_of, git, remove_workspace, run_units
from dspo.suite.plan import SuiteConfig, Unit, keep_units, plan_task, stage_costs, suite_task_params
from dspo.suite.tables import write_suite_tables

TUNING_DIR = Path("reports") / "tuning"  # scripts/tune.py's reports: the tables' tuning budgets
REPORT_FILES = ("results.json", "results.md", "results.png", "tuning.json", "tuning.md", "labeling.json",
                "labeling.md", "dataset.json", "dataset.png")
# the analyses unit's figures: uncached outputs (cache: false), so DVC's run-cache cannot restore them later --
# the suite copies them from the unit's workspace before removing it (local executor)
ANALYSIS_DIRS = ("fig4",)
TRACKED_INPUTS = ("dspo", "stages", "dvc.yaml", "params.yaml")
EXECUTORS = ("local", "ray")


def check_clean(repo: Path) -> str:
    """The commit the suite runs; refuse when the pipeline's files differ from it."""
    dirty = git(repo, "status", "--porcelain", "--", *TRACKED_INPUTS)
    if dirty:
        raise DSPOError("the suite runs the committed pipeline, but these files differ from HEAD:\n" + dirty
                        + "\ncommit (or stash) them first")
    return git(repo, "rev-parse", "HEAD")


def dvc_remote_url(repo: Path) -> str | None:
    """The URL of the project's default DVC remote (`.dvc/config`, overridable in config.local), if any."""
    from dvc.repo import Repo

    with Repo(str(repo)) as r:
        name = r.config["core"].get("remote")
        url = r.config["remote"].get(name, {}).get("url") if name else None
    if url and "://" not in url and not Path(url).is_absolute():
        url = str((repo / ".dvc" / url).resolve())  # DVC resolves relative remote paths from .dvc/
    return url


def origin_url(repo: Path) -> str:
    try:
        return git(repo, "remote", "get-url", "origin").strip()
    except DSPOError:
        raise ParamError("--executor ray clones the commit from a git remote: this checkout has no `origin`; "
                         "pass --git-remote <url>") from None


def check_pushed(repo: Path, git_url: str, commit: str) -> None:
    """Ray units clone `git_url`: refuse early when `commit` is not on it."""
    heads = [line.split()[0] for line in git(repo, "ls-remote", git_url).splitlines() if line.strip()]
    for head in heads:
        if head == commit or subprocess.run(["git", "merge-base", "--is-ancestor", commit, head], cwd=repo,
                                            capture_output=True).returncode == 0:
            return
    raise DSPOError(f"commit {commit[:10]} is not on the git remote {git_url}: push it first (Ray units clone it)")


UNIT_KINDS = ("data", "learner", "baseline", "analyses", "report")


def only_kinds(units: list[Unit], kinds: list[str]) -> list[Unit]:
    """The units of these kinds, waiting only on units that are still in the list."""
    unknown = sorted(set(kinds) - set(UNIT_KINDS))
    if unknown:
        raise ParamError(f"--only {unknown}: unit kinds are {', '.join(UNIT_KINDS)}")
    return keep_units(units, lambda u: u.name.split("-")[0] in kinds)


def copy_analysis_reports(src: Path, dest: Path) -> list[Path]:
    """Copy a task's analysis figures (ANALYSIS_DIRS under reports/<task>/) out of a unit's workspace."""
    copied = []
    for name in ANALYSIS_DIRS:
        if (src / name).is_dir():
            shutil.copytree(src / name, dest / name, dirs_exist_ok=True)
            copied.append(dest / name)
    return copied


def write_tables(repo: Path, params: dict, tasks: list[str], out_dir: Path) -> list[str]:
    """Tables 1-2 and the figure from every task in `tasks` with a report under `out_dir` (each task's copy
    keeps its dvc.lock and params: which commit and params made it, set against `params` now); returns the
    tasks covered (none: nothing written)."""
    ordered = {t: out_dir / t for t in tasks if (out_dir / t / "results.json").exists()}
    if ordered:
        write_suite_tables(ordered, out_dir, repo / TUNING_DIR,
                           {t: suite_task_params(params, t) for t in ordered})
    return list(ordered)


def rewrite_tables(repo: Path, params_path: Path, out_dir: Path) -> list[str]:
    """The tables again from the reports already under `out_dir` (no unit runs): after a tuning grid, or a
    change of how the tables read. Returns the tasks covered."""
    params = load_params(params_path)
    cfg = SuiteConfig.from_params(params, source=params_path)
    covered = write_tables(repo, params, cfg.tasks, out_dir)
    if not covered:
        raise DSPOError(f"no task report under {out_dir}: run the suite first")
    return covered


def run_suite(repo: Path, params_path: Path, out_dir: Path, root: Path, tasks: list[str] | None = None,
              jobs: int | None = None, cores: int | None = None, executor: str = "local",
              address: str = "local", git_url: str | None = None, remote_url: str | None = None,
              gpus_per_job: float = 0.0, retries: int = 2, only: list[str] | None = None) -> dict:
    """Run every task of the suite and write the tables; returns the run summary (also `out_dir/run.json`).

    executor "local": units on this machine (worktrees sharing the DVC cache). executor "ray": every
    unit but the reports as Ray tasks at `address`, each in a clone of `git_url` pushing to the DVC
    remote `remote_url` (`gpus_per_job` GPUs each, `retries` retries); the reports run here with
    `dvc repro --pull`, restoring every stage from the remote.

    `only`: run just these unit kinds (e.g. ["data"]: fetch every task's dataset into the cache, to
    train the learners later); without the report the tables are left as they are.
    """
    if executor not in EXECUTORS:
        raise ParamError(f"unknown executor {executor!r}; valid: {', '.join(EXECUTORS)}")
    if gpus_per_job < 0 or retries < 0:
        raise ParamError(f"--gpus-per-job ({gpus_per_job}) and --retries ({retries}) must be >= 0")
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
    per_task = {t: suite_task_params(params, t) for t in tasks}
    costs = stage_costs(repo)
    units: list[Unit] = [u for t in tasks for u in plan_task(t, per_task[t], dvc_spec, cfg.units, costs)]
    if only:
        units = only_kinds(units, only)
    cache = cache_dir_of(repo)
    start = time.perf_counter()
    reports = {u.key for u in units if u.name == "report"}
    if executor == "local":
        analyses = {u.key for u in units if u.name == "analyses"}
        results = run_units(repo, commit, units, per_task, root, cache, jobs, threads, keep=reports | analyses)
        for r in results:
            if r.unit.key in analyses:
                if r.returncode == 0:
                    copy_analysis_reports(r.workspace / "reports" / r.unit.task, out_dir / r.unit.task)
                    remove_workspace(repo, r.workspace)
    elif executor == "ray":
        from dspo.suite.ray_exec import run_units_ray

        git_url = git_url or origin_url(repo)
        remote_url = remote_url or dvc_remote_url(repo)
        if not remote_url:
            raise ParamError("--executor ray needs a DVC remote: set one in .dvc/config or pass --dvc-remote")
        if "://" not in remote_url:
            remote_url = str(Path(remote_url).resolve())
        check_pushed(repo, git_url, commit)
        remote = [u for u in units if u.key not in reports]
        results = run_units_ray(address, remote, per_task, git_url, commit, remote_url, threads, cores, root,
                                retries=retries, gpus=gpus_per_job)
        failed_tasks = {r.unit.task for r in results if r.returncode != 0}
        local = [Unit(u.task, u.name, u.targets, after=()) for u in units
                 if u.key in reports and u.task not in failed_tasks]
        results += run_units(repo, commit, local, per_task, root, cache, jobs, threads, keep=reports,
                             remote_url=remote_url)
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
        "commit": commit, "executor": executor, "jobs": jobs, "threads_per_job": threads,
        "wall_seconds": round(wall, 1),
        "tasks": tasks, "finished": [t for t in tasks if t in finished],
        "units": [{"unit": r.unit.key, "ok": r.returncode == 0, "seconds": round(r.seconds, 1),
                   "stages_run": len(r.ran), "ran": r.ran, "stages_restored": r.restored, "log": os.path.relpath(r.log, repo)}
                  for r in results],
    }
    # a run without reports (--only data) logs beside its worktrees, leaving the committed run.json alone
    write_json(summary, out_dir / "run.json" if reports else root / "run.json")
    for task, dest in finished.items():  # the run that made a task's numbers stays beside them
        write_json({**summary, "tasks": [task], "units": [u for u in summary["units"]
                                                         if u["unit"].startswith(f"{task}/")]}, dest / "run.json")
    # tables cover every suite task with a report under out_dir (finished ones were just copied there), so
    # `--task X` adds X to the tables instead of replacing them
    ordered = write_tables(repo, params, cfg.tasks, out_dir)
    failed = [u["unit"] for u in summary["units"] if not u["ok"]]
    if failed:
        raise DSPOError(f"suite units failed: {failed} (logs under {root / 'logs'}); tables cover "
                        f"{ordered or 'no task'}. " + json.dumps({u['unit']: u['log'] for u in summary['units']
                                                                      if not u['ok']}))
    return summary

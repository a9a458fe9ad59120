"""`make repro`: the default task's stale stages fanned out over this machine's cores, one torch thread each.

Why one thread: a stage's torch float sums depend on its thread count, so a serial `dvc repro` at the
machine's core count trained other discriminators and diffusion models on 2 cores than on 1 (README
"Thread count"), and the committed dvc.lock was made at one thread. At one thread per stage the core count
no longer changes the artifacts (a fresh 2-core clone reproduced the committed lock exactly) -- and a
serial run would leave cores idle, so the stale stages run as the suite's units instead (chains of stages
in git worktrees of HEAD sharing this project's DVC cache, `jobs` at once). The last step is `dvc repro` here, at one thread too: it restores
every stage the units computed from the run-cache and computes the rest (the report).
"""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import yaml

from dspo.core.artifacts import write_json
from dspo.core.config import load_params
from dspo.core.errors import DSPOError
from dspo.suite.local import cache_dir_of, dvc_bin, git, run_units, unit_env
from dspo.suite.plan import REPORT, downstream, expand_stages, keep_units, plan_task, stage_costs

PIPELINE_CODE = ("dspo", "stages", "dvc.yaml")  # what the units take from HEAD (params.yaml comes from here)
THREADS = 1  # torch threads per stage: the count the committed artifacts were computed at


def stale_stages(repo: Path) -> set[str]:
    """Stages `dvc status` reports as changed (deps, params, missing outputs); downstream ones not included."""
    from dvc.repo import Repo

    with Repo(str(repo)) as r:
        return {name.split(":")[-1] for name in r.status()}


def serial_repro(repo: Path, reason: str) -> int:
    """Plain `dvc repro` at one thread (pipeline code that differs from HEAD cannot be fanned out)."""
    print(f"repro: {reason}; running `dvc repro` serially at {THREADS} thread per stage", flush=True)
    return subprocess.run([dvc_bin(), "repro"], cwd=repo, env=unit_env(THREADS)).returncode


def fanout_repro(repo: Path, root: Path, jobs: int | None = None, serial: bool = False) -> dict:
    """Reproduce the workspace's pipeline (its params.yaml, HEAD's code); returns a summary (also root/run.json)."""
    repo, root = repo.resolve(), root.resolve()
    start = time.perf_counter()
    stale = stale_stages(repo)
    if not stale:
        print("repro: every stage is up to date", flush=True)
        return {"stale": [], "units": [], "wall_seconds": round(time.perf_counter() - start, 1)}
    try:
        commit = git(repo, "rev-parse", "HEAD")
        dirty = git(repo, "status", "--porcelain", "--", *PIPELINE_CODE).splitlines()
        reason = f"the pipeline code differs from HEAD ({dirty[0].split()[-1]}, ...)" if dirty else ""
    except DSPOError:
        commit, reason = "", "no git commit to fan out"
    if serial or reason:
        code = serial_repro(repo, "--serial" if serial else reason)
        if code != 0:
            raise DSPOError(f"dvc repro failed (exit {code})")
        return {"stale": sorted(stale), "units": [], "wall_seconds": round(time.perf_counter() - start, 1)}
    params = load_params(repo / "params.yaml")
    spec = yaml.safe_load((repo / "dvc.yaml").read_text())
    affected = downstream(expand_stages(spec, params), stale)
    task = params["task"]
    units = keep_units(plan_task(task, params, spec, "chain", stage_costs(repo)),
                       lambda u: u.name != REPORT and bool(set(u.targets) & affected))
    jobs = jobs or os.cpu_count() or 1
    print(f"repro: {len(affected)} stage(s) of {task} to run as {len(units)} unit(s), {jobs} at once, "
          f"{THREADS} thread each (logs: {root / 'logs' / task})", flush=True)
    results = run_units(repo, commit, units, {task: params}, root, cache_dir_of(repo), jobs, THREADS)
    failed = {r.unit.key: str(r.log) for r in results if r.returncode != 0}
    if failed:
        raise DSPOError(f"repro units failed (their logs): {failed}")
    fanned = time.perf_counter() - start
    code = subprocess.run([dvc_bin(), "repro"], cwd=repo, env=unit_env(THREADS)).returncode
    if code != 0:
        raise DSPOError(f"the final `dvc repro` failed (exit {code})")
    summary = {"commit": commit, "task": task, "jobs": jobs, "threads_per_job": THREADS, "stale": sorted(stale),
               "wall_seconds": round(time.perf_counter() - start, 1), "units_wall_seconds": round(fanned, 1),
               "units": [{"unit": r.unit.key, "seconds": round(r.seconds, 1), "ran": r.ran, "restored": r.restored}
                         for r in results]}
    write_json(summary, root / "run.json")
    return summary

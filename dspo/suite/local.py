"""Run suite units on this machine: `jobs` at a time, each in a git worktree of one commit, cores split between them.

Every unit gets `threads = cores // jobs` (OMP/MKL threads and `DSPO_THREADS`, which caps torch
and the rollout worker processes), because two stages of 2 threads on 2 cores ran ~100x slower
than one. A data unit started while no other unit can start takes the free job slots too (WIDE): its
stages give the same artifacts at any thread count, and every other unit of its task waits on it.
Workspaces share the project's DVC cache (and so its run-cache): a stage any unit, any earlier suite
run or the main workspace already ran with the same command, deps and params is restored, never
recomputed.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import yaml
from tqdm import tqdm

from dspo.core.errors import DSPOError
from dspo.suite.plan import Unit

GIT_LOCK = threading.Lock()  # git worktree add/remove/prune of parallel units must not interleave
RAN = "Running stage '"
RESTORED = "is cached - skipping run"
SUITE_REMOTE = "suite"  # the DVC remote a workspace is pointed at (its config.local, never committed)
# units whose stages write the same artifacts at any thread count (each behavior agent's and each collection
# job's seed fixes its result, not the worker that runs it), so idle job slots may be lent to them
WIDE = ("data",)


@dataclass
class UnitResult:
    unit: Unit
    returncode: int
    seconds: float
    ran: list[str]  # stages computed by this unit
    restored: int  # stages restored from the run-cache
    log: Path
    workspace: Path


def stages_in_log(text: str) -> tuple[list[str], int]:
    """From a `dvc repro` log: the stages it computed, and how many it restored from the run-cache."""
    return [line.split("'")[1] for line in text.splitlines() if line.startswith(RAN)], text.count(RESTORED)


def dvc_bin() -> str:
    found = Path(sys.executable).parent / "dvc"
    return str(found) if found.exists() else "dvc"


def cache_dir_of(repo: Path) -> Path:
    from dvc.repo import Repo

    with Repo(str(repo)) as r:
        return Path(r.cache.local_cache_dir)  # what `cache.dir` names (run-cache included)


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
    if proc.returncode != 0:
        raise DSPOError(f"git {' '.join(args)} failed in {repo}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def unit_env(threads: int, workspace: Path | None = None) -> dict[str, str]:
    """The environment of one unit: its thread budget, and its workspace first on PYTHONPATH so its stages
    import the workspace's `dspo` (the commit's), not the editable install of the checkout running the suite."""
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "DSPO_THREADS": str(threads),
                "DVC_NO_ANALYTICS": "1", "WANDB_MODE": "disabled", "PYTHONWARNINGS": "ignore"})
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    if workspace is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(workspace), env.get("PYTHONPATH", "")) if p)
    return env


def dvc_config(cache_dir: Path | None = None, remote_url: str | None = None) -> str:
    """A workspace's `.dvc/config.local`: the shared cache, and the DVC remote it pulls from / pushes to."""
    text = f"[cache]\n    dir = {cache_dir.resolve()}\n" if cache_dir else ""
    if remote_url:
        text += f"[core]\n    remote = {SUITE_REMOTE}\n['remote \"{SUITE_REMOTE}\"']\n    url = {remote_url}\n"
    return text


def make_workspace(repo: Path, commit: str, path: Path, params: dict, cache_dir: Path,
                   remote_url: str | None = None) -> None:
    """A detached worktree of `commit` with the task's params and the shared cache (a half-made one is
    replaced); with `remote_url`, that DVC remote as its default (the Ray executor's driver pulls from it)."""
    with GIT_LOCK:
        if path.exists():
            _remove_worktree(repo, path)
        git(repo, "worktree", "prune")
        path.parent.mkdir(parents=True, exist_ok=True)
        git(repo, "worktree", "add", "--detach", "--force", str(path), commit)
    (path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (path / ".dvc" / "config.local").write_text(dvc_config(cache_dir, remote_url))


def _remove_worktree(repo: Path, path: Path) -> None:
    """Drop a worktree and whatever is left of its folder (caller holds GIT_LOCK)."""
    subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=repo, capture_output=True)
    shutil.rmtree(path, ignore_errors=True)


def remove_workspace(repo: Path, path: Path) -> None:
    with GIT_LOCK:
        _remove_worktree(repo, path)


def run_unit(repo: Path, commit: str, unit: Unit, params: dict, root: Path, cache_dir: Path, threads: int,
             keep: bool = False, remote_url: str | None = None) -> UnitResult:
    """`dvc repro <targets>` for one unit in its own workspace; the log goes to root/logs/<task>/<unit>.log.

    With `remote_url`: `dvc repro --pull`, restoring from that DVC remote what Ray units pushed."""
    ws = root / "work" / unit.task / unit.name
    log = root / "logs" / unit.task / f"{unit.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    make_workspace(repo, commit, ws, params, cache_dir, remote_url)
    pull = ["--pull"] if remote_url else []
    with open(log, "w") as fh:
        proc = subprocess.run([dvc_bin(), "repro", *pull, *unit.targets], cwd=ws, env=unit_env(threads, ws), stdout=fh,
                              stderr=subprocess.STDOUT, text=True)
    ran, restored = stages_in_log(log.read_text())
    result = UnitResult(unit, proc.returncode, time.perf_counter() - start, ran, restored, log, ws)
    if proc.returncode == 0 and not keep:
        remove_workspace(repo, ws)
    return result


def slots_for(unit: Unit, free: int, ready: int) -> int:
    """Job slots `unit` takes when started: 1, or for a WIDE unit an even share of the `free` slots
    among the `ready` units (itself included) that could start now."""
    return max(1, free // ready) if unit.name in WIDE else 1


def announce(result: UnitResult, bar: tqdm, on_done=None) -> None:
    """A finished unit: one progress step, one line, the caller's hook."""
    bar.update(1)
    tqdm.write(f"{result.unit.key}: {'ok' if result.returncode == 0 else f'FAILED (see {result.log})'} in "
               f"{result.seconds:.0f} s, {len(result.ran)} stages run, {result.restored} restored")
    if on_done is not None:
        on_done(result)


def run_units(repo: Path, commit: str, units: list[Unit], params: dict[str, dict], root: Path, cache_dir: Path,
              jobs: int, threads: int, keep: set[str] = frozenset(), on_done=None,
              remote_url: str | None = None) -> list[UnitResult]:
    """Run `units` `jobs` at a time, each after the units it names in `after` (same task) succeeded.

    A failed unit stops the units of its task that wait on it; other tasks go on. `keep`: unit
    keys whose workspace is kept (the report units, whose outputs are collected afterwards).
    """
    pending = {u.key: u for u in units}
    succeeded: set[str] = set()
    failed: set[str] = set()
    results: list[UnitResult] = []
    running: dict[Future, tuple[Unit, int]] = {}  # a started unit and the job slots it holds
    bar = tqdm(total=len(units), desc="suite units", unit="unit")
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        while pending or running:
            ready = []
            for key, unit in list(pending.items()):
                deps = [f"{unit.task}/{a}" for a in unit.after]
                if any(d in failed for d in deps):  # never runs: what it needs failed
                    failed.add(key)
                    del pending[key]
                    bar.update(1)
                elif all(d in succeeded for d in deps):
                    ready.append(unit)
            for i, unit in enumerate(ready):
                free = jobs - sum(slots for _, slots in running.values())
                if free < 1:
                    break
                slots = slots_for(unit, free, len(ready) - i)
                running[pool.submit(run_unit, repo, commit, unit, params[unit.task], root, cache_dir,
                                    threads * slots, unit.key in keep, remote_url)] = (unit, slots)
                del pending[unit.key]
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                unit, _ = running.pop(fut)
                result = fut.result()
                results.append(result)
                (succeeded if result.returncode == 0 else failed).add(unit.key)
                announce(result, bar, on_done)
    bar.close()
    return results

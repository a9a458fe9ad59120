"""Run suite units on a Ray cluster: one Ray task per unit, in a fresh clone of a pushed commit.

A unit's task clones the project's git remote at the suite's commit, writes the task's params,
points DVC at the shared DVC remote, runs `dvc repro --pull <targets>` (which fetches the remote's
run-cache first, so a stage any earlier unit or run pushed is restored, not recomputed) and pushes
its run-cache and every output it names back (`push_run_cache`), also after a failure, so a retry or a
rerun resumes from the stages that finished. Nothing is shared but the two remotes (no workspace,
no `rw.lock`), so the cluster can be SSH machines, a Slurm allocation or this laptop. A task asks
Ray for `threads` CPUs (and `gpus` GPUs) and starts torch/BLAS with the same number of threads.
A failed `dvc repro` raises, so Ray retries it; the units waiting on it fail without running.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from tqdm import tqdm

from dspo.suite.local import UnitResult, announce, dvc_bin, dvc_config, stages_in_log, unit_env
from dspo.suite.plan import Unit


class UnitFailed(RuntimeError):
    """`dvc repro` of a unit failed; the message carries the end of its log (Ray retries on it)."""


def _run(cmd: list[str], cwd: Path, env: dict, log) -> int:
    log.write(f"$ {' '.join(cmd)}\n")
    log.flush()
    return subprocess.run(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, text=True).returncode


def remote_unit(unit: Unit, params: dict, git_url: str, commit: str, remote_url: str, threads: int,
                *after) -> dict:
    """The body of one Ray task (plain Python, also callable in-process): clone, repro, push.

    `after`: the results of the units this one waits for (Ray passes them once they finished)."""
    start = time.perf_counter()
    ws = Path(tempfile.mkdtemp(prefix=f"dspo-{unit.task}-{unit.name}-"))
    log_path = ws.parent / f"{ws.name}.log"
    env = unit_env(threads, ws)
    try:
        with open(log_path, "w") as log:
            rc = _run(["git", "clone", "-q", "--no-checkout", git_url, str(ws)], ws.parent, env, log) or \
                _run(["git", "checkout", "-q", "--detach", commit], ws, env, log)
            if rc == 0:
                (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
                (ws / ".dvc" / "config.local").write_text(dvc_config(remote_url=remote_url))
                rc = _run([dvc_bin(), "repro", "--pull", *unit.targets], ws, env, log)
                # push what finished even when a later stage failed: the retry restores it
                pushed = _run([sys.executable, "-c", "from dspo.suite.ray_exec import push_run_cache; "
                               "push_run_cache()"], ws, env, log)
                rc = rc or pushed
        text = log_path.read_text()
        if rc != 0:
            raise UnitFailed(f"{unit.key} failed (exit {rc}):\n" + "\n".join(text.splitlines()[-30:]))
        ran, restored = stages_in_log(text)
        return {"seconds": time.perf_counter() - start, "log": text, "ran": ran, "restored": restored}
    finally:
        shutil.rmtree(ws, ignore_errors=True)
        log_path.unlink(missing_ok=True)


def push_run_cache(root: str = ".") -> None:
    """`dvc push --run-cache`, plus the objects its entries name, to the default remote; exits 1 on a failure.

    DVC 3.67 pushes the run-cache entries and the objects of cached outs, but not those of `cache: false`
    outs (the git-tracked metrics and plots), although a run-cache entry needs every output it lists:
    a stage with such an out was never restored on another machine (measured: `collect` reran on every
    unit). The run-cache keeps those outs in the local cache, so pushing every object the entries name
    makes each pushed stage restorable anywhere.
    """
    from dvc.repo import Repo

    with Repo(root) as repo:
        entries = repo.stage_cache.push(None)  # runs/<key>/<value> files -> the remote
        used = repo.stage_cache.get_used_objs(entries)
        result = repo.cloud.push(set().union(*used.values()) if used else set())
    print(f"pushed {len(entries)} run-cache entries and {len(result.transferred)} objects "
          f"({len(result.failed)} failed)", flush=True)
    if result.failed:
        raise SystemExit(1)


def connect(address: str, cores: int) -> bool:
    """Join the cluster at `address`, or start one of `cores` CPUs here for "local"; True if started here."""
    import ray

    if ray.is_initialized():
        return False
    local = address == "local"
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # this project runs offline: nothing phones home
    if local:  # Ray starts workers at niceness 15 (background work); here the units are the work
        os.environ.setdefault("RAY_worker_niceness", "0")
    ray.init(address=None if local else address, num_cpus=cores if local else None, include_dashboard=False,
             log_to_driver=False, configure_logging=False)
    return local


def run_units_ray(address: str, units: list[Unit], params: dict[str, dict], git_url: str, commit: str,
                  remote_url: str, threads: int, cores: int, root: Path, retries: int = 2, gpus: float = 0.0,
                  on_done=None) -> list[UnitResult]:
    """Submit every unit as a Ray task (each after the units it names in `after`), wait, write the logs.

    `address`: a Ray cluster address (`ray start --head` prints it), or "local" for a cluster of
    `cores` CPUs started here (and shut down at the end). A unit whose retries are exhausted is
    reported failed, as are the units waiting on it (they never run).
    """
    import ray

    started = connect(address, cores)
    try:
        task = ray.remote(num_cpus=threads, num_gpus=gpus, max_retries=retries, retry_exceptions=True)(remote_unit)
        refs: dict[str, object] = {}
        for unit in units:  # plan order: every unit's `after` units come earlier
            deps = [refs[f"{unit.task}/{a}"] for a in unit.after if f"{unit.task}/{a}" in refs]
            refs[unit.key] = task.remote(unit, params[unit.task], git_url, commit, remote_url, threads, *deps)
        by_ref = {ref: unit for unit, ref in zip(units, refs.values())}
        results, waiting = [], list(refs.values())
        bar = tqdm(total=len(units), desc="ray units", unit="unit")
        while waiting:
            done, waiting = ray.wait(waiting, num_returns=1)
            unit = by_ref[done[0]]
            log = root / "logs" / unit.task / f"{unit.name}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            try:
                out = ray.get(done[0])
                log.write_text(out["log"])
                result = UnitResult(unit, 0, out["seconds"], out["ran"], out["restored"], log, Path())
            except Exception as exc:  # failed after its retries, or a unit it waits on did (Ray passes that on)
                log.write_text(str(exc))
                result = UnitResult(unit, 1, 0.0, [], 0, log, Path())
            results.append(result)
            announce(result, bar, on_done)
        bar.close()
        return results
    finally:
        if started:
            ray.shutdown()

"""Run suite units on a Ray cluster: one Ray task per unit, in a fresh clone of a pushed commit.

A unit's task clones the project's git remote at the suite's commit, writes the task's params,
points DVC at the shared remote, runs `dvc repro --pull <targets>` (which fetches the remote's
run-cache first, so anything pushed by an earlier unit or run is restored, not recomputed) and
pushes its outputs and run-cache back (`dvc push --run-cache`). Nothing is shared but the two
remotes, so the cluster can be SSH machines, a Slurm allocation or a laptop. The task asks Ray for
`threads` CPUs and starts torch/BLAS with the same number. A failed `dvc repro` raises, so Ray
retries it (`retries` times); a rerun after a crash restores whatever the finished units pushed.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

from dspo.suite.local import RAN, RESTORED, UnitResult, dvc_bin, unit_env
from dspo.suite.plan import Unit

REMOTE_NAME = "suite"  # the DVC remote each clone is pointed at (config.local, never committed)


class UnitFailed(RuntimeError):
    """`dvc repro` of a unit failed; the message carries the end of its log (Ray retries on it)."""


def configure_remote(workspace: Path, remote_url: str) -> None:
    (workspace / ".dvc" / "config.local").write_text(
        f"[core]\n    remote = {REMOTE_NAME}\n['remote \"{REMOTE_NAME}\"']\n    url = {remote_url}\n")


def _run(cmd: list[str], cwd: Path, env: dict, log) -> int:
    log.write(f"$ {' '.join(cmd)}\n")
    log.flush()
    return subprocess.run(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, text=True).returncode


def remote_unit(unit: Unit, params: dict, git_url: str, commit: str, remote_url: str, threads: int,
                *after) -> dict:
    """The body of one Ray task (also callable in-process): clone, `dvc repro --pull`, `dvc push --run-cache`."""
    start = time.perf_counter()
    ws = Path(tempfile.mkdtemp(prefix=f"dspo-{unit.task}-{unit.name}-"))
    log_path = ws.parent / f"{ws.name}.log"
    env = unit_env(threads)
    try:
        with open(log_path, "w") as log:
            rc = _run(["git", "clone", "-q", "--no-checkout", git_url, str(ws)], ws.parent, env, log) or \
                _run(["git", "checkout", "-q", "--detach", commit], ws, env, log)
            if rc == 0:
                (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
                configure_remote(ws, remote_url)
                rc = _run([dvc_bin(), "repro", "--pull", *unit.targets], ws, env, log)
            if rc == 0:
                rc = _run([dvc_bin(), "push", "--run-cache"], ws, env, log)
        text = log_path.read_text()
        if rc != 0:
            raise UnitFailed(f"{unit.key} failed (exit {rc}):\n" + "\n".join(text.splitlines()[-30:]))
        return {"returncode": rc, "seconds": time.perf_counter() - start, "log": text,
                "ran": [ln.split("'")[1] for ln in text.splitlines() if ln.startswith(RAN)],
                "restored": text.count(RESTORED)}
    finally:
        shutil.rmtree(ws, ignore_errors=True)
        log_path.unlink(missing_ok=True)


def run_units_ray(address: str, units: list[Unit], params: dict[str, dict], git_url: str, commit: str,
                  remote_url: str, threads: int, root: Path, retries: int = 2, on_done=None) -> list[UnitResult]:
    """Submit every unit as a Ray task (each after the units it names in `after`), wait, write the logs.

    `address`: a Ray cluster address (`ray start --head` prints it), or "local" for a cluster of
    this machine's cores started here. A unit whose retries are exhausted is reported failed; the
    units waiting on it are not run.
    """
    import ray

    if not ray.is_initialized():
        ray.init(address=None if address == "local" else address, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
    task = ray.remote(num_cpus=threads, max_retries=retries, retry_exceptions=True)(remote_unit)
    refs: dict[str, object] = {}
    for unit in units:  # plan order: every unit's `after` units come earlier
        deps = [refs[f"{unit.task}/{a}"] for a in unit.after]
        refs[unit.key] = task.remote(unit, params[unit.task], git_url, commit, remote_url, threads, *deps)
    results = []
    for unit in units:
        log = root / "logs" / unit.task / f"{unit.name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        try:
            out = ray.get(refs[unit.key])
            log.write_text(out["log"])
            result = UnitResult(unit, 0, out["seconds"], out["ran"], out["restored"], log, Path())
        except Exception as exc:  # a failed unit, or one whose `after` unit failed (Ray passes the error on)
            log.write_text(str(exc))
            result = UnitResult(unit, 1, 0.0, [], 0, log, Path())
        results.append(result)
        if on_done is not None:
            on_done(result)
    return results

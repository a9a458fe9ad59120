"""Glue for the Typer stage scripts: one-line errors for bad input, tracebacks for bugs, paths per task.

A stage function is wrapped by :func:`stage`: a `DSPOError` (bad params, files, splits, task
names) becomes one line on stderr and exit status 2; any other exception is a bug and keeps its
traceback. A successful run appends its wall time to `.dvc/tmp/dspo-stage-times.jsonl` for
`benchmarks/bench.py`; artifacts themselves stay free of timings so that the same params and
seed give byte-identical outputs.

`DSPO_THREADS` (set by the suite's executors) is the number of cores a stage may use: torch's
intra-op threads and the worker processes of train_behavior/collect are capped by it, so jobs
running side by side split the cores instead of oversubscribing them (two 2-thread stages on 2
cores each ran ~100x slower).
"""
from __future__ import annotations

import functools
import json
import os
import sys
import time
from pathlib import Path
from typing import Callable

from dspo.core.errors import DSPOError

TIMINGS_LOG = Path(".dvc") / "tmp" / "dspo-stage-times.jsonl"  # untracked by git and DVC
RESUME_DIR = Path(".dvc") / "tmp" / "resume"  # resumable training states (never DVC outputs: see train_diffusion)


def stage(fn: Callable) -> Callable:
    """Run a stage function; turn the project's own errors into `error: ...` and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        limit_threads()
        try:
            result = fn(*args, **kwargs)
        except DSPOError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        _log_time(time.perf_counter() - start, kwargs)
        return result

    return wrapper


def _log_time(seconds: float, options: dict) -> None:
    if not TIMINGS_LOG.parent.parent.is_dir():
        return
    name = Path(sys.argv[0]).stem
    if isinstance(options.get("algo"), str):
        name = f"{name}@{options['algo']}"
    TIMINGS_LOG.parent.mkdir(exist_ok=True)
    with open(TIMINGS_LOG, "a") as fh:
        fh.write(json.dumps({"stage": name, "task": options.get("task"), "seconds": round(seconds, 2),
                             "time": time.strftime("%Y-%m-%dT%H:%M:%S")}) + "\n")


THREADS_ENV = "DSPO_THREADS"


def cpu_budget() -> int:
    """Cores this process may use: `DSPO_THREADS` when an executor set it, else every core."""
    value = os.environ.get(THREADS_ENV)
    if value is None:
        return os.cpu_count() or 1
    if not value.isdigit() or int(value) < 1:
        raise DSPOError(f"{THREADS_ENV}={value!r} must be a positive integer")
    return int(value)


def limit_threads() -> None:
    """Cap torch's threads at the cpu budget (only when an executor set one; torch is imported lazily)."""
    if THREADS_ENV not in os.environ:
        return
    import torch

    torch.set_num_threads(cpu_budget())


def seed_dir(seed: int) -> str:
    """The folder name of one learner seed's artifacts: models/<task>/<algo>/seed<k>/..."""
    return f"seed{seed}"


def task_dirs(task: str, root: str | os.PathLike = ".") -> dict[str, Path]:
    root = Path(root)
    return {"data": root / "data" / task, "models": root / "models" / task, "reports": root / "reports" / task}

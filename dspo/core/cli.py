"""Glue for the Typer stage scripts: one-line errors for bad input, tracebacks for bugs, paths per task.

A stage function is wrapped by :func:`stage`: a `DSPOError` (bad params, files, splits, task
names) becomes one line on stderr and exit status 2; any other exception is a bug and keeps its
traceback. A successful run appends its wall time to `.dvc/tmp/dspo-stage-times.jsonl` for
`benchmarks/bench.py`; artifacts themselves stay free of timings so that the same params and
seed give byte-identical outputs.
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


def stage(fn: Callable) -> Callable:
    """Run a stage function; turn the project's own errors into `error: ...` and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
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


def task_dirs(task: str, root: str | os.PathLike = ".") -> dict[str, Path]:
    root = Path(root)
    return {"data": root / "data" / task, "models": root / "models" / task, "reports": root / "reports" / task}

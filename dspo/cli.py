"""Shared glue for the Typer stage scripts: one-line errors, non-zero exit, paths per task."""
from __future__ import annotations

import functools
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Callable

# Quiet third-party import chatter (wandb via fsrl, gymnasium-robotics) before anything imports them.
warnings.filterwarnings("ignore")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("WANDB_MODE", "disabled")

from dspo.collect import SplitError  # noqa: E402
from dspo.config import ParamError  # noqa: E402
from dspo.rollout import CheckpointMismatchError  # noqa: E402
from dspo.schemas import SchemaError  # noqa: E402
from dspo.tasks import UnknownTaskError  # noqa: E402

USER_ERRORS = (ParamError, SchemaError, SplitError, UnknownTaskError, CheckpointMismatchError, FileNotFoundError,
               ValueError)


TIMINGS_LOG = Path(".dvc") / "tmp" / "dspo-stage-times.jsonl"  # untracked by git and DVC


def stage(fn: Callable) -> Callable:
    """Turn a user error raised by a stage into one line on stderr and exit status 2.

    A successful run appends its wall time to `.dvc/tmp/dspo-stage-times.jsonl` (when run inside a
    DVC repo) for `benchmarks/bench.py`; artifacts themselves stay free of timings so that the same
    params and seed give byte-identical outputs.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            result = fn(*args, **kwargs)
        except USER_ERRORS as exc:
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

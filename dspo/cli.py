"""Shared glue for the Typer stage scripts: one-line errors, non-zero exit, paths per task."""
from __future__ import annotations

import functools
import os
import sys
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


def stage(fn: Callable) -> Callable:
    """Turn a user error raised by a stage into one line on stderr and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None

    return wrapper


def task_dirs(task: str, root: str | os.PathLike = ".") -> dict[str, Path]:
    root = Path(root)
    return {"data": root / "data" / task, "models": root / "models" / task, "reports": root / "reports" / task}

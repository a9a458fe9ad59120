"""Artifacts on disk: atomic writers, the one checkpoint format and its one loader, training curves.

Every writer goes through :func:`atomic_path`: write to a temp file in the target's folder,
then `os.replace` it into place (atomic on POSIX within one filesystem), so a stage that is
interrupted leaves either the old file or the new one.

Checkpoints are plain dicts of tensors and Python values (no pickled classes), tagged with
`kind` and `task` and the sizes they were built for; :func:`load_checkpoint` is the one reader
and refuses a file of another kind, task or size before anything is built from it.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from dspo.core.errors import CheckpointMismatchError, MissingArtifactError


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside `target`; on success move it onto `target`, on error delete it."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(payload: dict, target: str | os.PathLike) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(_jsonable(payload), indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.exists():
        raise MissingArtifactError(f"{path}: file not found (run the stage that produces it first)")
    return json.loads(path.read_text())


def save_torch(obj: Any, target: str | os.PathLike) -> None:
    """torch.save via memory: its zip archive is named after the file, and a random temp name
    would make identical checkpoints differ byte-wise (and look changed to DVC)."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic_path(target) as tmp:
        tmp.write_bytes(buffer.getvalue())


def save_figure(fig, target: str | os.PathLike, dpi: int = 120) -> None:
    """Save a matplotlib figure atomically as PNG and close it."""
    import matplotlib.pyplot as plt

    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)


def write_curve(frame, csv_path: str | os.PathLike) -> None:
    """A training curve as CSV: dvc.yaml declares these as DVC plots (`dvc plots show`)."""
    with atomic_path(csv_path) as tmp:
        frame.to_csv(tmp, index=False)


def save_checkpoint(payload: dict, target: str | os.PathLike) -> None:
    """Write a checkpoint dict (it must carry `kind` and `task`) byte-deterministically and atomically."""
    if not isinstance(payload, dict) or "kind" not in payload or "task" not in payload:
        raise TypeError("a checkpoint is a dict with at least 'kind' and 'task'")
    save_torch(payload, target)


def load_checkpoint(path: str | os.PathLike, kinds: str | tuple[str, ...], *, task: str | None = None,
                    obs_dim: int | None = None, act_dim: int | None = None, producer: str = "its training stage") -> dict:
    """Read a checkpoint dict; refuse a missing file, another kind, another task or other obs/action sizes."""
    import torch

    path = Path(path)
    kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    if not path.exists():
        raise MissingArtifactError(f"{path}: checkpoint not found (run {producer} first)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a corrupt or foreign file
        raise CheckpointMismatchError(f"{path}: not a readable checkpoint ({type(exc).__name__})") from None
    kind = ckpt.get("kind") if isinstance(ckpt, dict) else type(ckpt).__name__
    if kind not in kinds:
        raise CheckpointMismatchError(f"{path}: checkpoint kind {kind!r}, expected {' or '.join(map(repr, kinds))}")
    if task is not None and ckpt.get("task") != task:
        raise CheckpointMismatchError(f"{path}: trained for task {ckpt.get('task')!r}, not {task!r}")
    for key, expected in (("obs_dim", obs_dim), ("act_dim", act_dim)):
        if expected is not None and key in ckpt and ckpt[key] != expected:
            raise CheckpointMismatchError(f"{path}: built for {key}={ckpt[key]}, but task {ckpt.get('task')!r} "
                                          f"has {expected}; was it trained on another task?")
    return ckpt

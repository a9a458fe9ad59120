"""params.yaml access, seeding and device choice shared by every stage.

Hyper-parameters live in params.yaml grouped per stage; stages take only paths, task, seed
and device on the command line (Typer) and read the rest from here, so `dvc exp run -S`
is the one way to change them.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import yaml


class ParamError(ValueError):
    """A hyper-parameter is missing or out of range; the message says what would be valid."""


def load_params(path: str | os.PathLike = "params.yaml") -> dict:
    path = Path(path)
    if not path.exists():
        raise ParamError(f"{path}: params file not found")
    with open(path) as fh:
        return yaml.safe_load(fh) or {}


def section(params: dict, name: str) -> dict:
    if name not in params or not isinstance(params[name], dict):
        raise ParamError(f"params.yaml: missing section {name!r}")
    return params[name]


def require(cfg: dict, key: str, section_name: str, *, kind: type | tuple = (int, float), minimum: float | None = None,
            maximum: float | None = None, strict_min: bool = False) -> Any:
    """Fetch `cfg[key]` and check its type and range, naming `section.key` in the error."""
    if key not in cfg:
        raise ParamError(f"params.yaml: missing {section_name}.{key}")
    value = cfg[key]
    if isinstance(value, bool) and kind is not bool and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise ParamError(f"params.yaml: {section_name}.{key}={value!r} must be a number")
    if not isinstance(value, kind):
        raise ParamError(f"params.yaml: {section_name}.{key}={value!r} has the wrong type (expected {kind})")
    if minimum is not None and (value <= minimum if strict_min else value < minimum):
        bound = f"> {minimum}" if strict_min else f">= {minimum}"
        raise ParamError(f"params.yaml: {section_name}.{key}={value!r} must be {bound}")
    if maximum is not None and value > maximum:
        raise ParamError(f"params.yaml: {section_name}.{key}={value!r} must be <= {maximum}")
    return value


def require_int_list(cfg: dict, key: str, section_name: str) -> list[int]:
    """A non-empty list of positive ints (layer widths, U-Net multipliers), named `section.key` in the error."""
    value = cfg.get(key)
    if not isinstance(value, list) or not value or not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
        raise ParamError(f"params.yaml: {section_name}.{key}={value!r} must be a non-empty list of positive ints")
    return value


def seed_everything(seed: int) -> None:
    """CleanRL-style seeding block: python, numpy and torch (CPU and CUDA)."""
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def resolve_device(name: str) -> "torch.device":
    """`auto` picks CUDA when present, else CPU; anything else is passed to torch as is."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ParamError(f"device {name!r} requested but CUDA is not available; use 'auto' or 'cpu'")
    return torch.device(name)

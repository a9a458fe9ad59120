"""Typed params: every params.yaml section is a pydantic model, plus seeding and device choice.

Hyper-parameters live in params.yaml grouped per stage; stages take only paths, task, seed and
device on the command line and read the rest through a `Section` model, so `dvc exp run -S` is
the one way to change them. A model has no defaults in code (every key comes from the file),
refuses unknown keys, and checks types and ranges; a failure is one `ParamError` line naming
the params file, `section.key`, the value given and what would be valid.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar

import numpy as np
import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt, ValidationError

from dspo.core.errors import ParamError

DEFAULT_PARAMS = Path("params.yaml")


def _number(value: Any) -> Any:
    """A YAML number (int or float) as float; booleans and strings are refused, not coerced."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"must be a number, got {type(value).__name__}")
    return float(value)


# Field types used by every Section (pydantic checks them; the error names section.key).
Int = StrictInt
Bool = StrictBool
Float = Annotated[float, BeforeValidator(_number)]
PosInt = Annotated[StrictInt, Field(ge=1)]
NonNegInt = Annotated[StrictInt, Field(ge=0)]
PosFloat = Annotated[float, BeforeValidator(_number), Field(gt=0)]
NonNegFloat = Annotated[float, BeforeValidator(_number), Field(ge=0)]
UnitFloat = Annotated[float, BeforeValidator(_number), Field(ge=0, le=1)]
OpenUnitFloat = Annotated[float, BeforeValidator(_number), Field(gt=0, le=1)]  # (0, 1]
Widths = Annotated[list[PosInt], Field(min_length=1)]  # layer widths, U-Net multipliers

S = TypeVar("S", bound="Section")


class Section(BaseModel):
    """One params.yaml section. Subclasses declare fields (no defaults) and set `section`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    section: ClassVar[str] = ""

    @classmethod
    def from_params(cls: type[S], params: dict, name: str | None = None,
                    source: str | os.PathLike = DEFAULT_PARAMS) -> S:
        """Build from `params[name]` (default: the class's section); errors name `source` and `name.key`."""
        name = name or cls.section
        if name not in params or not isinstance(params[name], dict):
            raise ParamError(f"{source}: missing section {name!r}")
        return cls.from_section(params[name], name, source)

    @classmethod
    def from_section(cls: type[S], values: Any, name: str | None = None,
                     source: str | os.PathLike = DEFAULT_PARAMS) -> S:
        name = name or cls.section
        if not isinstance(values, dict):
            raise ParamError(f"{source}: section {name!r} must be a mapping, got {values!r}")
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise ParamError(_one_line(exc, name, source, values, cls)) from None

    def to_dict(self) -> dict:
        return self.model_dump()


def _one_line(exc: ValidationError, name: str, source, values: dict, cls: type[Section]) -> str:
    err = exc.errors()[0]
    key = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in err["loc"]).lstrip(".")
    if err["type"] == "extra_forbidden":
        return f"{source}: unknown key {name}.{key}; valid keys: {', '.join(cls.model_fields)}"
    if err["type"] == "missing":
        return f"{source}: missing {name}.{key}"
    msg = err["msg"].removeprefix("Value error, ")
    if not key:
        return f"{source}: section {name!r}: {msg}"
    return f"{source}: {name}.{key}={err.get('input')!r}: {msg}"


def load_params(path: str | os.PathLike = DEFAULT_PARAMS) -> dict:
    path = Path(path)
    if not path.exists():
        raise ParamError(f"{path}: params file not found")
    with open(path) as fh:
        params = yaml.safe_load(fh) or {}
    if not isinstance(params, dict):
        raise ParamError(f"{path}: must be a mapping of sections")
    return params


def read_section(cls: type[S], path: str | os.PathLike = DEFAULT_PARAMS, name: str | None = None) -> S:
    """`cls` built from section `name` of the params file at `path` (errors name that file)."""
    return cls.from_params(load_params(path), name, source=path)


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
    try:
        return torch.device(name)
    except RuntimeError:
        raise ParamError(f"device {name!r} is not a torch device; use auto, cpu or cuda[:n]") from None

"""Every Parquet table of the pipeline: its schema, its writer and its validating reader.

Tables are flat, one row per step (Minari / LeRobot style) with an `episode_id` column and
fixed-size list columns for vectors. Readers check the file against the schema and the
data for NaN / inf and fail with one line naming the file and the field, so a malformed or
cost-carrying learner table is refused before any work starts.

The learner table (`dataset.parquet`) is cost-label-free by construction: its schema has no
cost column, and :func:`read_table` refuses any column outside the schema -- a file that
carries a cost, a safety flag or a behaviour-agent id is rejected by name.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dspo.core.artifacts import atomic_path
from dspo.core.errors import DataError, SchemaError

SAFE_DEMO = "safe_demo"
UNLABELED = "unlabeled"
SPLITS = (SAFE_DEMO, UNLABELED)

# Metadata keys stored in every table's schema metadata.
META_TASK = b"dspo.task"
META_OBS_DIM = b"dspo.obs_dim"
META_ACT_DIM = b"dspo.act_dim"


@dataclass(frozen=True)
class TableSpec:
    name: str
    fields: tuple[tuple[str, str], ...]  # (column, kind); kind in {int, float, bool, str, obs, act}
    per_episode: tuple[str, ...] = ()  # columns constant within an episode
    allowed_values: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def columns(self) -> list[str]:
        return [name for name, _ in self.fields]

    def arrow_schema(self, obs_dim: int, act_dim: int, task: str) -> pa.Schema:
        kinds = {
            "int": pa.int64(),
            "float": pa.float64(),
            "float32": pa.float32(),
            "bool": pa.bool_(),
            "str": pa.string(),
            "obs": pa.list_(pa.float32(), obs_dim),
            "act": pa.list_(pa.float32(), act_dim),
        }
        meta = {META_TASK: task.encode(), META_OBS_DIM: str(obs_dim).encode(), META_ACT_DIM: str(act_dim).encode()}
        return pa.schema([pa.field(n, kinds[k], nullable=False) for n, k in self.fields], metadata=meta)


DATASET = TableSpec(
    "dataset",
    (
        ("episode_id", "int"),
        ("step", "int"),
        ("obs", "obs"),
        ("action", "act"),
        ("reward", "float32"),
        ("terminated", "bool"),
        ("truncated", "bool"),
        ("split", "str"),
    ),
    per_episode=("split",),
    allowed_values=(("split", SPLITS),),
)

ORACLE = TableSpec(
    "oracle",
    (
        ("episode_id", "int"),
        ("step", "int"),
        ("cost", "float32"),
        ("cost_return", "float"),
        ("is_safe", "bool"),
        ("source_agent", "str"),
        ("source_cost_limit", "float"),  # NaN-free: -1 marks a reward-only agent
        ("source_checkpoint", "int"),  # env steps of training behind the snapshot
        ("source_noise", "float"),  # std of the Gaussian action noise
        ("source_mix", "float"),  # probability of taking the second agent's action (0 = none)
    ),
    per_episode=("cost_return", "is_safe", "source_agent", "source_cost_limit", "source_checkpoint",
                 "source_noise", "source_mix"),
)

EVAL_EPISODES = TableSpec(
    "eval_episodes",
    (
        ("block", "str"),
        ("episode", "int"),
        ("seed", "int"),
        ("reward", "float"),
        ("cost", "float"),
        ("length", "int"),
        ("normalized_reward", "float"),
        ("normalized_cost", "float"),
    ),
)

LABELED = TableSpec(  # label_safety: the discriminator's safety signal per episode (no oracle involved)
    "labeled",
    (
        ("episode_id", "int"),
        ("split", "str"),
        ("return", "float"),
        ("z", "float"),
    ),
    allowed_values=(("split", SPLITS),),
)

GENERATED = TableSpec(  # generate: diffusion samples, one row per step of each generated segment
    "generated",
    (
        ("segment_id", "int"),
        ("step", "int"),
        ("obs", "obs"),
        ("action", "act"),
        ("return_condition", "float"),
        ("z_condition", "float"),
    ),
)

TABLES = {spec.name: spec for spec in (DATASET, ORACLE, EVAL_EPISODES, LABELED, GENERATED)}


def _vector_column(values: np.ndarray, dim: int) -> pa.FixedSizeListArray:
    flat = pa.array(np.ascontiguousarray(values, dtype=np.float32).reshape(-1))
    return pa.FixedSizeListArray.from_arrays(flat, dim)


def write_table(spec: TableSpec, columns: dict[str, np.ndarray], path: str | os.PathLike, *, task: str,
                obs_dim: int = 0, act_dim: int = 0) -> None:
    """Validate `columns` against `spec` and write them atomically as Parquet."""
    path = Path(path)
    missing = [c for c in spec.columns() if c not in columns]
    extra = [c for c in columns if c not in spec.columns()]
    if missing or extra:
        raise SchemaError(f"{path}: cannot write table {spec.name!r}: missing {missing}, unexpected {extra}")
    schema = spec.arrow_schema(obs_dim, act_dim, task)
    arrays = []
    for name, kind in spec.fields:
        values = columns[name]
        if kind == "obs":
            arrays.append(_vector_column(values, obs_dim))
        elif kind == "act":
            arrays.append(_vector_column(values, act_dim))
        else:
            arrays.append(pa.array(np.asarray(values) if kind != "str" else list(values), type=schema.field(name).type))
    table = pa.Table.from_arrays(arrays, schema=schema)
    _check_values(spec, table, path)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def _check_values(spec: TableSpec, table: pa.Table, path: Path) -> None:
    if table.num_rows == 0:
        raise SchemaError(f"{path}: table {spec.name!r} is empty")
    for name, kind in spec.fields:
        col = table.column(name)
        if col.null_count:
            raise SchemaError(f"{path}: field {name!r} has {col.null_count} missing values")
        if kind in ("float", "float32", "obs", "act"):
            values = col.combine_chunks()
            flat = values.flatten() if kind in ("obs", "act") else values
            arr = flat.to_numpy(zero_copy_only=False)
            bad = ~np.isfinite(arr)
            if bad.any():
                raise SchemaError(f"{path}: field {name!r} has {int(bad.sum())} NaN/inf values")
    for name, allowed in spec.allowed_values:
        seen = set(table.column(name).to_pylist())
        if not seen <= set(allowed):
            raise SchemaError(f"{path}: field {name!r} has values {sorted(seen - set(allowed))}, allowed {list(allowed)}")


def read_table(spec: TableSpec, path: str | os.PathLike) -> tuple[pa.Table, dict]:
    """Read and validate a table; return it and its metadata (task, obs_dim, act_dim)."""
    path = Path(path)
    if not path.exists():
        raise SchemaError(f"{path}: file not found (run the stage that produces it first)")
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise SchemaError(f"{path}: not a readable Parquet file ({exc})") from None
    extra = [c for c in table.column_names if c not in spec.columns()]
    if extra:
        hint = " -- learner tables must not carry cost or safety information" if spec is DATASET else ""
        raise SchemaError(f"{path}: unexpected field(s) {extra} in table {spec.name!r}{hint}")
    missing = [c for c in spec.columns() if c not in table.column_names]
    if missing:
        raise SchemaError(f"{path}: missing field(s) {missing} for table {spec.name!r}")
    meta = table.schema.metadata or {}
    info = {
        "task": meta.get(META_TASK, b"").decode(),
        "obs_dim": int(meta.get(META_OBS_DIM, b"0")),
        "act_dim": int(meta.get(META_ACT_DIM, b"0")),
    }
    expected = spec.arrow_schema(info["obs_dim"], info["act_dim"], info["task"])
    for field in expected:
        actual = table.schema.field(field.name).type
        if actual != field.type:
            raise SchemaError(f"{path}: field {field.name!r} has type {actual}, expected {field.type}")
    table = table.select(spec.columns())
    _check_values(spec, table, path)
    return table, info


def vectors(table: pa.Table, name: str) -> np.ndarray:
    """A fixed-size list column as a 2-D float32 array, without a Python loop."""
    col = table.column(name).combine_chunks()
    dim = col.type.list_size
    return col.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim).astype(np.float32, copy=False)


def scalars(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy()


@dataclass
class StepData:
    """The learner's view of `dataset.parquet` as NumPy arrays (no cost, by construction)."""

    task: str
    episode_id: np.ndarray
    step: np.ndarray
    obs: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    split: np.ndarray

    @property
    def obs_dim(self) -> int:
        return self.obs.shape[1]

    @property
    def act_dim(self) -> int:
        return self.action.shape[1]

    def select(self, mask: np.ndarray) -> "StepData":
        """The rows where `mask` holds; refuses an empty selection (nothing could be learned from it)."""
        if not np.any(mask):
            raise DataError(f"the selected part of the {self.task} dataset is empty")
        return StepData(self.task, *(getattr(self, f)[mask] for f in
                                     ("episode_id", "step", "obs", "action", "reward", "terminated", "truncated", "split")))

    def episode_returns(self) -> pd.Series:
        return pd.Series(self.reward, dtype=np.float64).groupby(self.episode_id).sum()


def read_dataset(path: str | os.PathLike, *, task: str | None = None) -> StepData:
    """Read the learner table; refuse a file written for another task or with the task's sizes wrong."""
    table, info = read_table(DATASET, path)
    if task is not None and info["task"] != task:
        raise SchemaError(f"{path}: dataset was written for task {info['task']!r}, expected {task!r}")
    if task is not None:
        from dspo.data.tasks import get_task

        spec = get_task(task)
        if (info["obs_dim"], info["act_dim"]) != (spec.obs_dim, spec.act_dim):
            raise SchemaError(f"{path}: obs/action sizes {info['obs_dim']}/{info['act_dim']} do not match task "
                              f"{task!r} ({spec.obs_dim}/{spec.act_dim})")
    return StepData(
        task=info["task"],
        episode_id=scalars(table, "episode_id"),
        step=scalars(table, "step"),
        obs=vectors(table, "obs"),
        action=vectors(table, "action"),
        reward=scalars(table, "reward").astype(np.float32),
        terminated=scalars(table, "terminated"),
        truncated=scalars(table, "truncated"),
        split=np.asarray(table.column("split").to_pylist()),
    )


def read_frame(spec: TableSpec, path: str | os.PathLike) -> pd.DataFrame:
    """Read a scalar-only table (oracle, eval episodes) as a DataFrame, validated."""
    table, _ = read_table(spec, path)
    return table.to_pandas()

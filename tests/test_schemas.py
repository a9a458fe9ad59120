import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dspo.data.schemas import DATASET, ORACLE, SchemaError, read_dataset, read_table, write_table
from tests.conftest import synthetic_columns


def test_dataset_round_trip(synthetic_dataset):
    data = read_dataset(synthetic_dataset, task="BallCircle")
    cols = synthetic_columns()
    np.testing.assert_array_equal(data.obs, cols["obs"])
    np.testing.assert_array_equal(data.action, cols["action"])
    assert data.obs_dim == 8 and data.act_dim == 2
    assert set(data.split) == {"safe_demo", "unlabeled"}
    assert len(data.episode_returns()) == 6


def test_dataset_schema_has_no_cost_information():
    names = " ".join(DATASET.columns()).lower()
    for forbidden in ("cost", "safe_flag", "is_safe", "agent", "limit", "source"):
        assert forbidden not in names


def test_cost_carrying_dataset_is_refused(synthetic_dataset):
    table = pq.read_table(synthetic_dataset)
    table = table.append_column("cost", pa.array(np.zeros(table.num_rows, dtype=np.float32)))
    pq.write_table(table, synthetic_dataset)
    with pytest.raises(SchemaError, match=r"dataset.parquet: unexpected field\(s\) \['cost'\].*cost"):
        read_dataset(synthetic_dataset)


def test_nan_observation_is_refused_on_read(synthetic_dataset):
    table = pq.read_table(synthetic_dataset)
    obs = table.column("obs").combine_chunks().flatten().to_numpy().copy()
    obs[5] = np.nan
    new = pa.FixedSizeListArray.from_arrays(pa.array(obs), 8)
    table = table.set_column(table.schema.get_field_index("obs"), table.schema.field("obs"), new)
    pq.write_table(table, synthetic_dataset)
    with pytest.raises(SchemaError, match="field 'obs' has 1 NaN/inf"):
        read_dataset(synthetic_dataset)


def test_missing_field_and_wrong_type_are_named(synthetic_dataset):
    table = pq.read_table(synthetic_dataset)
    pq.write_table(table.drop_columns(["reward"]), synthetic_dataset)
    with pytest.raises(SchemaError, match=r"missing field\(s\) \['reward'\]"):
        read_dataset(synthetic_dataset)
    bad = table.set_column(table.schema.get_field_index("step"), "step", pa.array(np.zeros(table.num_rows), pa.float64()))
    pq.write_table(bad, synthetic_dataset)
    with pytest.raises(SchemaError, match="field 'step' has type double"):
        read_dataset(synthetic_dataset)


def test_unknown_split_value_and_other_task_refused(tmp_path):
    cols = synthetic_columns()
    cols["split"] = np.where(cols["split"] == "safe_demo", "expert", "unlabeled")
    with pytest.raises(SchemaError, match="field 'split' has values \\['expert'\\]"):
        write_table(DATASET, cols, tmp_path / "d.parquet", task="BallCircle", obs_dim=8, act_dim=2)
    write_table(DATASET, synthetic_columns(), tmp_path / "d.parquet", task="CarRun", obs_dim=8, act_dim=2)
    with pytest.raises(SchemaError, match="written for task 'CarRun', expected 'BallCircle'"):
        read_dataset(tmp_path / "d.parquet", task="BallCircle")


def test_empty_table_and_missing_file(tmp_path):
    cols = {k: v[:0] for k, v in synthetic_columns().items()}
    with pytest.raises(SchemaError, match="is empty"):
        write_table(DATASET, cols, tmp_path / "d.parquet", task="BallCircle", obs_dim=8, act_dim=2)
    assert not (tmp_path / "d.parquet").exists()
    with pytest.raises(SchemaError, match="file not found"):
        read_table(ORACLE, tmp_path / "oracle.parquet")


def test_interrupted_write_leaves_no_file(tmp_path, monkeypatch):
    import dspo.data.schemas as schemas

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(schemas.pq, "write_table", boom)
    target = tmp_path / "d.parquet"
    with pytest.raises(KeyboardInterrupt):
        write_table(DATASET, synthetic_columns(), target, task="BallCircle", obs_dim=8, act_dim=2)
    assert list(tmp_path.iterdir()) == []


def test_shape_mismatch_refused_on_write(tmp_path):
    cols = synthetic_columns()
    with pytest.raises(Exception):
        write_table(DATASET, cols, tmp_path / "d.parquet", task="BallCircle", obs_dim=7, act_dim=2)
    assert not (tmp_path / "d.parquet").exists()

"""Bad input is refused before work starts: one-line error, exit status 2, no partial output."""
import shutil
import subprocess

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml

from dspo.learners.nets import DeterministicPolicy
from dspo.learners.normalizers import BoundsNormalizer, GaussianNormalizer
from tests.conftest import PYTHON, REPO


def run_stage(cwd, script, *args):
    proc = subprocess.run([PYTHON, str(REPO / "stages" / script), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)
    return proc.returncode, proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""


@pytest.fixture
def workdir(tmp_path, synthetic_dataset):
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["bc"]["steps"] = 20
    params["bc"]["per_algo"] = {"bc_safe": {"steps": 30}}  # an algorithm's own settings (checked below)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp_path


def test_unknown_task(workdir):
    rc, err = run_stage(workdir, "train_bc.py", "--task", "BallSquare", "--algo", "bc_all", "--seed", "0")
    assert rc == 2 and err.startswith("error: unknown task 'BallSquare'; valid tasks:") and "BallCircle" in err


def test_bc_trains_on_valid_synthetic_data(workdir):
    rc, err = run_stage(workdir, "train_bc.py", "--task", "BallCircle", "--algo", "bc_safe", "--seed", "0")
    assert rc == 0, err
    ckpt = torch.load(workdir / "models" / "BallCircle" / "bc_safe" / "seed0" / "policy.pt", weights_only=False)
    assert ckpt["trainer"]["steps"] == 30  # bc.per_algo.bc_safe on top of bc.steps (20)
    rc, err = run_stage(workdir, "train_bc.py", "--task", "BallCircle", "--algo", "bc_all", "--seed", "0")
    assert rc == 0, err
    ckpt = torch.load(workdir / "models" / "BallCircle" / "bc_all" / "seed0" / "policy.pt", weights_only=False)
    assert ckpt["trainer"]["steps"] == 20


def test_cost_carrying_dataset_refused(workdir, synthetic_dataset):
    table = pq.read_table(synthetic_dataset)
    pq.write_table(table.append_column("cost", pa.array(np.ones(table.num_rows, dtype=np.float32))), synthetic_dataset)
    rc, err = run_stage(workdir, "train_bc.py", "--task", "BallCircle", "--algo", "bc_all", "--seed", "0")
    assert rc == 2 and "dataset.parquet: unexpected field(s) ['cost']" in err
    assert not (workdir / "models").exists()


def test_nan_observation_refused(workdir, synthetic_dataset):
    table = pq.read_table(synthetic_dataset)
    obs = table.column("obs").combine_chunks().flatten().to_numpy().copy()
    obs[0] = np.nan
    table = table.set_column(table.schema.get_field_index("obs"), table.schema.field("obs"),
                             pa.FixedSizeListArray.from_arrays(pa.array(obs), 8))
    pq.write_table(table, synthetic_dataset)
    rc, err = run_stage(workdir, "train_bc.py", "--task", "BallCircle", "--algo", "bc_all", "--seed", "0")
    assert rc == 2 and "field 'obs' has 1 NaN/inf values" in err


def test_negative_learning_rate_refused(workdir):
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["bc"]["lr"] = -0.1
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    rc, err = run_stage(workdir, "train_bc.py", "--task", "BallCircle", "--algo", "bc_all", "--seed", "0")
    assert rc == 2 and err == "error: params.yaml: bc.lr=-0.1: Input should be greater than 0"


def test_errors_name_the_params_file_given(workdir):
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["bc"]["hiden"] = [8]
    (workdir / "sweep.yaml").write_text(yaml.safe_dump(params))
    rc, err = run_stage(workdir, "train_bc.py", "--task", "BallCircle", "--algo", "bc_all", "--seed", "0", "--params", "sweep.yaml")
    assert rc == 2 and err.startswith("error: sweep.yaml: unknown key bc.hiden; valid keys: steps, batch_size")


def test_empty_split_refused(workdir, synthetic_dataset):
    table = pq.read_table(synthetic_dataset)
    split = pa.array(["unlabeled"] * table.num_rows)
    pq.write_table(table.set_column(table.schema.get_field_index("split"), table.schema.field("split"), split),
                   synthetic_dataset)
    rc, err = run_stage(workdir, "train_bc.py", "--task", "BallCircle", "--algo", "bc_safe", "--seed", "0")
    assert rc == 2 and err == "error: the selected part of the BallCircle dataset is empty"


def test_dataset_of_another_task_refused(workdir):
    shutil.copytree(workdir / "data" / "BallCircle", workdir / "data" / "CarCircle")
    rc, err = run_stage(workdir, "train_bc.py", "--task", "CarCircle", "--algo", "bc_all", "--seed", "0")
    assert rc == 2 and "written for task 'BallCircle', expected 'CarCircle'" in err


def test_checkpoint_with_wrong_observation_size_refused(workdir):
    policy = DeterministicPolicy(GaussianNormalizer.fit(np.random.randn(10, 5)), BoundsNormalizer([-1, -1], [1, 1]), [8])
    path = workdir / "models" / "BallCircle" / "odd" / "seed0" / "policy.pt"
    path.parent.mkdir(parents=True)
    torch.save(policy.checkpoint("BallCircle"), path)
    rc, err = run_stage(workdir, "evaluate.py", "--task", "BallCircle", "--algo", "odd", "--seed", "0")
    assert rc == 2 and "built for obs_dim=5, but task 'BallCircle' has 8; was it trained on another task?" in err
    assert not (workdir / "reports").exists()


def test_missing_behavior_agents_refused(workdir):
    rc, err = run_stage(workdir, "collect.py", "--task", "BallCircle", "--seed", "0")
    assert rc == 2 and "index.json: file not found" in err


@pytest.mark.parametrize("learner", ["bc", "dwbc"])
@pytest.mark.parametrize("source", ["generated", "unlabeled", "labeled_safe", "generated+labeled_share",
                                    "generated+inverse_dynamics"])
def test_distill_fills_the_share_from_the_chosen_source(workdir, source, learner):
    """The controls train on real D^U pairs in D^G's place, at the same share: all of D^U (`unlabeled`),
    or the episodes whose z reaches the smallest demo z (`labeled_safe`)."""
    from dspo.data.schemas import GENERATED, LABELED, SAFE_DEMO, UNLABELED, read_dataset, write_table

    rng = np.random.default_rng(0)
    n, horizon = 3, 4
    gen = workdir / "generated.parquet"
    write_table(GENERATED, {"segment_id": np.repeat(np.arange(n), horizon), "step": np.tile(np.arange(horizon), n),
                            "obs": rng.normal(size=(n * horizon, 8)).astype(np.float32),
                            "action": rng.uniform(-1, 1, (n * horizon, 2)).astype(np.float32),
                            "return_condition": np.ones(n * horizon), "z_condition": np.ones(n * horizon)},
                gen, task="BallCircle", obs_dim=8, act_dim=2)
    data = read_dataset(workdir / "data" / "BallCircle" / "dataset.parquet", task="BallCircle")
    ids, first = np.unique(data.episode_id, return_index=True)
    split = data.split[first]
    # demos score 0.6-0.9; unlabeled episodes alternate 0.95 (labeled safe) and 0.1
    z = np.where(split == SAFE_DEMO, np.linspace(0.6, 0.9, len(ids)), np.where(np.arange(len(ids)) % 2, 0.95, 0.1))
    labels = workdir / "labeled.parquet"
    write_table(LABELED, {"episode_id": ids, "split": split, "return": np.zeros(len(ids)), "z": z}, labels,
                task="BallCircle")
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["distill"]["source"] = source.split("+")[0]
    params["distill"]["learner"] = learner  # either learner fills the same mixture (DWBC: as its expert set)
    params["dwbc"]["steps"] = 20
    # the lever: labeled-safe episodes beside D^G (0 otherwise: the labeled_safe control refuses both at once)
    params["distill"]["labeled_share"] = 0.25 if source.endswith("labeled_share") else 0.0
    # the lever: D^G's actions relabeled, one pair fewer per segment (real-pair sources keep their recorded actions)
    params["distill"].update(actions="inverse_dynamics" if source.endswith("inverse_dynamics") else "generated",
                             inverse_steps=20)
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    rc, err = run_stage(workdir, "distill_bc.py", "--task", "BallCircle", "--generated", str(gen), "--labels",
                        str(labels), "--seed", "0")
    assert rc == 0, err
    ckpt = torch.load(workdir / "models" / "BallCircle" / "dspo" / "seed0" / "policy.pt", weights_only=False)
    chosen = ids[(split == UNLABELED) & (z >= 0.6)]
    labeled_pairs = int(np.isin(data.episode_id, chosen).sum())
    expected = {"generated": n * horizon, "unlabeled": int((data.split == UNLABELED).sum()),
                "labeled_safe": labeled_pairs, "generated+labeled_share": n * horizon,
                "generated+inverse_dynamics": n * (horizon - 1)}[source]
    assert 0 < len(chosen) < int((split == UNLABELED).sum())
    assert ckpt["source"] == source.split("+")[0] and ckpt["generated_pairs"] == expected
    assert ckpt["labeled_pairs"] == (labeled_pairs if source.endswith("labeled_share") else 0)
    relabeled = source.endswith("inverse_dynamics")
    assert ckpt["actions"] == ("inverse_dynamics" if relabeled else "generated")
    assert ckpt["learner"] == learner and ckpt["trainer"]["steps"] == 20  # dwbc.steps or bc.steps, both 20 here
    assert (ckpt["relabel_mean_abs_change"] > 0) if relabeled else ckpt["relabel_mean_abs_change"] is None

    if source == "generated+labeled_share" and learner == "bc":  # the return floor drops the low-return labeled-safe
        pos = np.arange(len(ids))
        returns = np.where(split == SAFE_DEMO, 1.0, np.where(pos % 4 == 1, 2.0, 0.0))
        write_table(LABELED, {"episode_id": ids, "split": split, "return": returns, "z": z}, labels, task="BallCircle")
        params["distill"]["labeled_return_quantile"] = 0.0  # return >= the smallest demo return, 1.0
        (workdir / "params.yaml").write_text(yaml.safe_dump(params))
        rc, err = run_stage(workdir, "distill_bc.py", "--task", "BallCircle", "--generated", str(gen), "--labels",
                            str(labels), "--seed", "0")
        assert rc == 0, err
        floored = ids[(split == UNLABELED) & (z >= 0.6) & (returns >= 1.0)]
        assert 0 < len(floored) < len(chosen)
        ckpt = torch.load(workdir / "models" / "BallCircle" / "dspo" / "seed0" / "policy.pt", weights_only=False)
        assert ckpt["labeled_pairs"] == int(np.isin(data.episode_id, floored).sum())
        assert ckpt["labeled_return_quantile"] == 0.0
        params["distill"]["labeled_return_quantile"] = 1.0  # above the best demo: none is, the share goes to the demos
        (workdir / "params.yaml").write_text(yaml.safe_dump(params))
        write_table(LABELED, {"episode_id": ids, "split": split, "return": np.where(split == SAFE_DEMO, 3.0, returns),
                              "z": z}, labels, task="BallCircle")
        proc = subprocess.run([PYTHON, str(REPO / "stages" / "distill_bc.py"), "--task", "BallCircle", "--generated",
                               str(gen), "--labels", str(labels), "--seed", "0"], cwd=workdir, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert "no unlabeled episode has z >= the smallest demo z" in proc.stdout
        assert "(distill.labeled_return_quantile 1 of the demos')" in proc.stdout
        assert "labeled_share 0.25 -> 0" in proc.stdout
        params["distill"]["labeled_return_quantile"] = None
        (workdir / "params.yaml").write_text(yaml.safe_dump(params))

    if source in ("labeled_safe", "generated+labeled_share"):  # nothing labeled safe
        write_table(LABELED, {"episode_id": ids, "split": split, "return": np.zeros(len(ids)),
                              "z": np.where(split == SAFE_DEMO, 0.9, 0.1)}, labels, task="BallCircle")
        proc = subprocess.run([PYTHON, str(REPO / "stages" / "distill_bc.py"), "--task", "BallCircle", "--generated",
                               str(gen), "--labels", str(labels), "--seed", "0"], cwd=workdir, capture_output=True,
                              text=True, timeout=300)
        if source == "labeled_safe":  # the control exists to train on them: refused, with the knob to turn
            assert proc.returncode == 2
            assert "no unlabeled episode has z >= the smallest demo z (0.9)" in proc.stderr
        else:  # the lever falls back to the demos (a default must run on every task), and says so
            assert proc.returncode == 0, proc.stderr
            assert "labeled_share 0.25 -> 0" in proc.stdout
            ckpt = torch.load(workdir / "models" / "BallCircle" / "dspo" / "seed0" / "policy.pt", weights_only=False)
            assert ckpt["labeled_pairs"] == 0 and ckpt["labeled_share"] == 0.0
            assert ckpt["labeled_share_requested"] == 0.25

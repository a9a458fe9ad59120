"""The learner contract, the one fit loop, typed params, the checkpoint loader and stage error handling."""
import numpy as np
import pytest
import torch

from dspo.core.artifacts import load_checkpoint, save_checkpoint
from dspo.core.cli import stage
from dspo.core.config import PosInt, Section, read_section
from dspo.core.errors import CheckpointMismatchError, DataError, MissingArtifactError, ParamError
from dspo.learners.contract import FitState, FunctionLearner, fit


class Counter:
    """A learner whose logged value is its step: curve means are easy to check by hand."""

    def __init__(self):
        self.batches = []

    def batch(self, step):
        self.batches.append(step)
        return step

    def update(self, batch, step):
        return {"value": float(batch)}


def test_fit_logs_means_since_the_last_row_and_the_last_step():
    curve = fit(Counter(), steps=7, log_every=3, desc="t")
    assert curve["step"].tolist() == [3, 6, 7]
    assert curve["value"].tolist() == [2.0, 5.0, 7.0]  # mean of 1..3, 4..6, 7


def test_fit_evaluation_rows_and_saves():
    saved, evaluated = [], []

    def evaluate(step, due):
        evaluated.append((step, due))
        return {"score": float(step) if due else np.nan}

    curve = fit(Counter(), steps=10, log_every=4, desc="t", eval_every=5, evaluate=evaluate, save_every=3,
                save=lambda s: saved.append(s.step))
    assert curve["step"].tolist() == [4, 5, 8, 10]
    assert [d for _, d in evaluated] == [False, True, False, True]
    assert saved == [3, 6, 9, 10]


class Crashing(Counter):
    def batch(self, step):
        if step == 8:
            raise KeyboardInterrupt
        return super().batch(step)


def test_fit_resumes_after_a_crash_to_the_same_curve():
    full = fit(Counter(), steps=9, log_every=4, desc="t")
    states = []
    with pytest.raises(KeyboardInterrupt):
        fit(Crashing(), steps=9, log_every=4, desc="t", save_every=3, save=lambda s: states.append(
            FitState(s.step, [dict(r) for r in s.history], dict(s.sums), s.count)))
    assert states[-1].step == 6
    learner = Counter()
    resumed = fit(learner, steps=9, log_every=4, desc="t", state=states[-1])
    assert learner.batches == [7, 8, 9]
    assert resumed.equals(full)


def test_function_learner_without_batch():
    curve = fit(FunctionLearner(lambda batch, step: {"x": 2.0 * step}), steps=2, log_every=1, desc="t")
    assert curve["x"].tolist() == [2.0, 4.0]


class Toy(Section):
    section = "toy"
    steps: PosInt


def test_section_reads_its_file_and_names_it(tmp_path):
    path = tmp_path / "other.yaml"
    path.write_text("toy: {steps: 3}\n")
    assert read_section(Toy, path).steps == 3
    path.write_text("toy: {steps: 0}\n")
    with pytest.raises(ParamError, match=r"^.*other.yaml: toy.steps=0: Input should be greater than or equal to 1$"):
        read_section(Toy, path)
    path.write_text("nothing: {}\n")
    with pytest.raises(ParamError, match=r"other.yaml: missing section 'toy'"):
        read_section(Toy, path)
    with pytest.raises(ParamError, match="params file not found"):
        read_section(Toy, tmp_path / "absent.yaml")
    with pytest.raises(Exception):  # frozen: a config is not edited in place
        Toy(steps=1).steps = 2


def test_checkpoint_loader_refuses_kind_task_size_and_missing(tmp_path):
    path = tmp_path / "m.pt"
    save_checkpoint({"kind": "thing", "task": "BallCircle", "obs_dim": 8, "w": torch.ones(2)}, path)
    assert torch.equal(load_checkpoint(path, "thing", task="BallCircle", obs_dim=8)["w"], torch.ones(2))
    with pytest.raises(CheckpointMismatchError, match="checkpoint kind 'thing', expected 'other'"):
        load_checkpoint(path, "other")
    with pytest.raises(CheckpointMismatchError, match="trained for task 'BallCircle', not 'CarRun'"):
        load_checkpoint(path, "thing", task="CarRun")
    with pytest.raises(CheckpointMismatchError, match="built for obs_dim=8"):
        load_checkpoint(path, "thing", obs_dim=7)
    with pytest.raises(MissingArtifactError, match="run train_x first"):
        load_checkpoint(tmp_path / "absent.pt", "thing", producer="train_x")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointMismatchError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "junk.pt", "thing")
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    for p in (a, b):
        save_checkpoint({"kind": "thing", "task": "BallCircle", "w": torch.arange(3)}, p)
    assert a.read_bytes() == b.read_bytes()  # byte-deterministic: DVC sees an unchanged output


def test_stage_turns_only_project_errors_into_one_line(capsys):
    @stage
    def bad_input():
        raise DataError("the selected part is empty")

    @stage
    def bug():
        return {}["missing"]

    with pytest.raises(SystemExit) as exit_info:
        bad_input()
    assert exit_info.value.code == 2 and capsys.readouterr().err == "error: the selected part is empty\n"
    with pytest.raises(KeyError):  # a bug keeps its traceback
        bug()

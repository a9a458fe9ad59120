"""`disc.scorer: rgm` — DSPO's z from RGM's reward correction: the formula, the checkpoint, the stages."""
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from dspo.core.errors import CheckpointMismatchError
from dspo.data.schemas import LABELED, read_frame
from dspo.learners.baselines.rgm import RGMConfig
from dspo.learners.dspo.rgm_scorer import CROSSFIT_KIND, SCORER_KIND, train_rgm_scorer
from dspo.learners.dspo.scorer import DiscriminatorScorer, load_scorer
from tests.test_discriminator import config, tiny_data
from tests.test_stage_errors import run_stage, workdir  # noqa: F401 (the fixture)

torch.set_num_threads(1)
SMALL_RGM = dict(steps=60, disc_steps=150, batch_size=32, lr=1e-3, actor_lr=3e-4, correction_lr=1e-3, hidden=[32, 32],
                 gamma=0.99, alpha=1.0, correction_scale=1.0, correction_penalty=0.0, log_every=20)


@pytest.fixture(scope="module")
def trained():
    data = tiny_data()
    ones = np.ones(data.act_dim)
    scorer, curve = train_rgm_scorer(data, -ones, ones, RGMConfig.from_section(SMALL_RGM), "cpu", seed=0)
    return data, scorer, curve


def test_z_is_one_minus_the_episodes_mean_estimated_step_cost(trained):
    data, scorer, _ = trained
    z = scorer.score_episodes(data).set_index("episode_id")["z"]
    cost = pd.Series(scorer.step_costs(data.obs, data.action, data.reward), index=data.episode_id)
    expected = 1.0 - cost.groupby(level=0).mean()
    np.testing.assert_allclose(z.to_numpy(), expected.reindex(z.index).to_numpy(), rtol=1e-6)
    assert z.between(0, 1).all() and z.std() > 0  # a score, not a constant
    assert sorted(z.index) == sorted(np.unique(data.episode_id))


def test_step_costs_are_standardized_over_the_table(trained):
    data, scorer, _ = trained
    with torch.no_grad():
        delta = scorer.correction(torch.as_tensor(scorer.obs_norm.normalize(data.obs), dtype=torch.float32),
                                  torch.as_tensor(scorer.bounds.normalize(data.action), dtype=torch.float32),
                                  torch.as_tensor(data.reward, dtype=torch.float32)).numpy()
    assert scorer.delta_mean == pytest.approx(float(delta.mean()), abs=1e-5)
    cost = scorer.step_costs(data.obs, data.action, data.reward)
    assert cost.mean() == pytest.approx(0.5, abs=0.1)  # sigmoid of a standardized variable
    assert np.all(np.diff(cost[np.argsort(delta)]) <= 1e-6)  # a larger correction is a smaller cost


def test_curve_has_the_classifier_phase_then_the_correction_phase(trained):
    _, _, curve = trained
    assert list(curve["phase"].unique()) == ["classifier", "correction"]
    assert curve["step"].is_monotonic_increasing and curve["step"].iloc[-1] == 150 + 60
    assert curve.loc[curve["phase"] == "classifier", "loss_d"].notna().all()  # the column dvc.yaml plots


def test_segments_are_ranked_by_the_demo_classifier(trained):
    """tiny_data's demos are shifted by +1 in observation: segments there must score higher than at -1."""
    data, scorer, _ = trained
    rng = np.random.default_rng(0)
    act = rng.uniform(-1, 1, (8, 6, data.act_dim))
    demo_like = scorer.score_segments(rng.normal(1.0, 0.3, (8, 6, data.obs_dim)), act)
    far = scorer.score_segments(rng.normal(-1.0, 0.3, (8, 6, data.obs_dim)), act)
    assert demo_like.shape == (8,) and demo_like.min() > far.max()


def test_checkpoint_round_trip_and_dispatch(trained, tmp_path):
    data, scorer, _ = trained
    path = tmp_path / "model.pt"
    scorer.save(path, "BallCircle", {"seed": 0})
    loaded, ckpt = load_scorer(path, task="BallCircle", obs_dim=data.obs_dim, act_dim=data.act_dim)
    assert ckpt["kind"] == SCORER_KIND and loaded.name == "RGM correction"
    pd.testing.assert_frame_equal(loaded.score_episodes(data), scorer.score_episodes(data))
    with pytest.raises(CheckpointMismatchError, match="trained for task 'BallCircle', not 'CarRun'"):
        load_scorer(path, task="CarRun", obs_dim=data.obs_dim, act_dim=data.act_dim)
    with pytest.raises(CheckpointMismatchError, match="obs_dim"):
        load_scorer(path, task="BallCircle", obs_dim=data.obs_dim + 1, act_dim=data.act_dim)


def test_discriminator_checkpoints_load_as_before(tmp_path):
    """The knob is not saved in a discriminator checkpoint (so its bytes did not change); loading fills it in."""
    from dspo.learners.dspo.discriminator import save_discriminator_checkpoint, train_discriminator

    data = tiny_data()
    cfg = config(steps=5, backbone="mlp", holdout_demos=0)
    model, normalizer, _, _ = train_discriminator(data, cfg, "cpu", 0)
    save_discriminator_checkpoint(tmp_path / "model.pt", model, normalizer, cfg, "BallCircle")
    assert "scorer" not in torch.load(tmp_path / "model.pt", weights_only=True)["config"]
    loaded, _ = load_scorer(tmp_path / "model.pt", task="BallCircle", obs_dim=data.obs_dim, act_dim=data.act_dim)
    assert isinstance(loaded, DiscriminatorScorer) and loaded.cfg.scorer == "discriminator"


def _rgm_workdir(workdir, demo_folds=1, **rgm):
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["disc"].update(scorer="rgm", demo_folds=demo_folds)
    params["rgm"].update({**SMALL_RGM, **rgm})
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    return workdir


@pytest.mark.parametrize("demo_folds, kind", [(1, SCORER_KIND), (2, CROSSFIT_KIND)])
def test_stages_train_and_label_with_the_rgm_scorer(workdir, demo_folds, kind):
    _rgm_workdir(workdir, demo_folds)
    rc, err = run_stage(workdir, "train_discriminator.py", "--task", "BallCircle", "--seed", "0", "--device", "cpu")
    assert rc == 0, err
    model = workdir / "models" / "BallCircle" / "discriminator" / "seed0" / "model.pt"
    assert torch.load(model, weights_only=True)["kind"] == kind
    rc, err = run_stage(workdir, "label_safety.py", "--task", "BallCircle", "--seed", "0", "--device", "cpu")
    assert rc == 0, err
    labeled = read_frame(LABELED, workdir / "data" / "BallCircle" / "dspo" / "seed0" / "labeled.parquet")
    assert labeled["z"].between(0, 1).all() and labeled["z"].nunique() > 1


def test_bad_rgm_settings_are_refused_before_training(workdir):
    _rgm_workdir(workdir, lr=-1.0)
    rc, err = run_stage(workdir, "train_discriminator.py", "--task", "BallCircle", "--seed", "0", "--device", "cpu")
    assert rc == 2 and "rgm.lr=-1.0" in err
    assert not (workdir / "models").exists()


# ---------------------------------------------------------------- k-fold demo cross-fitting (disc.demo_folds)

def test_demo_folds_partition_the_demos_evenly_and_reproducibly():
    from dspo.core.errors import ParamError
    from dspo.data.schemas import SAFE_DEMO
    from dspo.learners.dspo.rgm_scorer import assign_demo_folds

    data = tiny_data(n_episodes=12, n_demos=7)
    demos = set(np.unique(data.episode_id[data.split == SAFE_DEMO]).tolist())
    folds = assign_demo_folds(data, 3, seed=0)
    assert set(folds) == demos and sorted(np.bincount(list(folds.values()))) == [2, 2, 3]
    assert folds == assign_demo_folds(data, 3, seed=0) and folds != assign_demo_folds(data, 3, seed=1)
    with pytest.raises(ParamError, match="disc.demo_folds=8 exceeds the 7 safe demos"):
        assign_demo_folds(data, 8, seed=0)


@pytest.fixture(scope="module")
def crossfit():
    from dspo.learners.dspo.rgm_scorer import train_crossfit_rgm_scorer

    data = tiny_data()
    ones = np.ones(data.act_dim)
    scorer, curve = train_crossfit_rgm_scorer(data, -ones, ones, RGMConfig.from_section(SMALL_RGM), 2, "cpu", seed=0)
    return data, scorer, curve


def test_a_demo_is_scored_by_the_member_that_did_not_train_on_it(crossfit):
    data, scorer, curve = crossfit
    z = scorer.score_episodes(data).set_index("episode_id")["z"]
    member_z = [m.score_episodes(data).set_index("episode_id")["z"] for m in scorer.members]
    assert len(scorer.members) == 2 and sorted(curve["fold"].unique()) == [0, 1]
    for episode in z.index:
        if episode in scorer.demo_fold:
            assert z[episode] == member_z[scorer.demo_fold[episode]][episode]
        else:
            assert z[episode] == pytest.approx((member_z[0][episode] + member_z[1][episode]) / 2)
    assert member_z[0].to_numpy().tolist() != member_z[1].to_numpy().tolist()  # two fits on different demo sets
    rng = np.random.default_rng(0)
    obs, act = rng.normal(size=(5, 6, data.obs_dim)), rng.uniform(-1, 1, (5, 6, data.act_dim))
    np.testing.assert_allclose(scorer.score_segments(obs, act),
                               (scorer.members[0].score_segments(obs, act) + scorer.members[1].score_segments(obs, act)) / 2)


def test_each_member_trained_with_its_fold_moved_into_the_unlabeled_data(crossfit, monkeypatch):
    """The fold's demos are relabeled D^U for that member only; every other row keeps its split."""
    import dspo.learners.dspo.rgm_scorer as rs
    from dspo.data.schemas import SAFE_DEMO, UNLABELED

    data, scorer, _ = crossfit
    seen = []
    monkeypatch.setattr(rs, "train_rgm_scorer", lambda d, *a, **k: (seen.append(d.split.copy()), (scorer.members[0],
                                                                     pd.DataFrame({"step": [0]})))[1])
    rs.train_crossfit_rgm_scorer(data, None, None, None, 2, "cpu", seed=0)
    for fold, split in enumerate(seen):
        held = np.isin(data.episode_id, [e for e, f in scorer.demo_fold.items() if f == fold])
        assert (split[held] == UNLABELED).all() and (split[~held] == data.split[~held]).all()
        assert (split == SAFE_DEMO).any()


def test_crossfit_checkpoint_round_trip_and_dispatch(crossfit, tmp_path):
    data, scorer, _ = crossfit
    scorer.save(tmp_path / "model.pt", "BallCircle", {"seed": 0})
    loaded, ckpt = load_scorer(tmp_path / "model.pt", task="BallCircle", obs_dim=data.obs_dim, act_dim=data.act_dim)
    assert ckpt["kind"] == CROSSFIT_KIND and loaded.demo_fold == scorer.demo_fold and "2-fold" in loaded.name
    pd.testing.assert_frame_equal(loaded.score_episodes(data), scorer.score_episodes(data))
    with pytest.raises(CheckpointMismatchError, match="obs_dim"):
        load_scorer(tmp_path / "model.pt", task="BallCircle", obs_dim=data.obs_dim + 1, act_dim=data.act_dim)


def test_demo_folds_is_refused_for_the_discriminator():
    with pytest.raises(ValueError, match="demo_folds=3 applies to scorer rgm only"):
        config(demo_folds=3)
    with pytest.raises(ValueError):
        config(scorer="rgm", demo_folds=0)



def test_scorer_rgm_settings_layer_on_the_baselines():
    """disc.rgm_settings overrides the RGM baseline's rgm.* for the scorer only; bad keys are named where they live."""
    from dspo.core.errors import ParamError
    from dspo.learners.dspo.rgm_scorer import scorer_rgm_config

    params = {"rgm": dict(SMALL_RGM)}
    assert scorer_rgm_config(config(scorer="rgm"), params) == RGMConfig.from_section(SMALL_RGM)
    pinned = scorer_rgm_config(config(scorer="rgm", rgm_settings={"alpha": 0.25, "correction_scale": 4.0}), params)
    assert (pinned.alpha, pinned.correction_scale, pinned.steps) == (0.25, 4.0, SMALL_RGM["steps"])
    with pytest.raises(ParamError, match="disc.rgm_settings.alpha"):
        scorer_rgm_config(config(scorer="rgm", rgm_settings={"alpha": -1.0}), params)
    with pytest.raises(ParamError, match="disc.rgm_settings"):
        scorer_rgm_config(config(scorer="rgm", rgm_settings={"no_such_key": 1}), params)
    with pytest.raises(ParamError, match="rgm.lr"):
        scorer_rgm_config(config(scorer="rgm"), {"rgm": {**SMALL_RGM, "lr": -1.0}})

"""SafetyTransformer, vCLUB and train_discriminator: math, causality, alternating updates, errors."""
import re

import numpy as np
import pytest
import torch

from dspo.core.errors import ParamError
from dspo.learners.dspo.safety_transformer import (MLPDiscriminator, PreferenceAttention, SafetyTransformer,
                                            build_discriminator)
from dspo.data.schemas import StepData
from dspo.learners.dspo.discriminator import (DiscConfig, EpisodeWindows, discriminator_loss, load_discriminator_checkpoint,
                                      save_discriminator_checkpoint, score_episodes, train_discriminator)
from dspo.learners.dspo.vclub import ReturnBinClassifier, return_bins, theta_step, vclub_estimate, vclub_penalty
from tests.conftest import synthetic_columns

torch.set_num_threads(1)

DISC = dict(scorer="discriminator", backbone="transformer", context_len=8, d_model=32, n_layers=2, n_heads=4, dropout=0.0, pref_dim=16,
            mlp_hidden=[64, 64], steps=80, batch_size=8, lr=1e-3, weight_decay=0.0, mi_weight=0.5, vclub_mixture="data", return_bins=4,
            q_lr=1e-2, q_steps_per_step=1, grad_penalty=0.0, holdout_demos=1, eval_every=40, log_every=10,
            class_prior=None)


def tiny_data(n_episodes=10, n_demos=4, length=24, short=(15, 9)) -> StepData:
    """Synthetic learner data; demos shifted so they are learnable; two episodes cut short."""
    cols = synthetic_columns(n_episodes=n_episodes, length=length, n_demos=n_demos)
    cols["obs"][cols["episode_id"] < n_demos] += 1.0
    data = StepData("BallCircle", **cols)
    keep = np.ones(len(data.step), dtype=bool)
    for ep, cut in zip((n_episodes - 1, n_episodes - 2), short):
        keep &= ~((data.episode_id == ep) & (data.step >= cut))
    return data.select(keep)


def config(**overrides) -> DiscConfig:
    return DiscConfig.from_section({**DISC, **overrides})


# ---------------------------------------------------------------- vCLUB


def fit_q(z, bins, n_bins, steps=300):
    torch.manual_seed(0)
    q = ReturnBinClassifier(n_bins)
    opt = torch.optim.Adam(q.parameters(), lr=1e-2)
    for _ in range(steps):
        theta_step(q, opt, z, bins)
    return q


def test_vclub_estimate_matches_the_pairwise_formula():
    torch.manual_seed(0)
    log_probs = torch.log_softmax(torch.randn(7, 3), -1)
    bins = torch.tensor([0, 2, 2, 1, 0, 0, 2])
    pairwise = log_probs[:, bins]  # [i, j] = log q(r_j | z_i)
    expected = log_probs[torch.arange(7), bins].mean() - pairwise.mean()
    assert torch.allclose(vclub_estimate(log_probs, bins), expected, atol=1e-6)


def test_vclub_near_zero_for_independent_and_positive_for_dependent():
    gen = torch.Generator().manual_seed(0)
    z = torch.rand(2000, generator=gen)
    independent = torch.randint(0, 5, (2000,), generator=gen)
    dependent = (z * 5).long().clamp_max(4)
    est_ind = vclub_penalty(fit_q(z, independent, 5), z, independent).item()
    est_dep = vclub_penalty(fit_q(z, dependent, 5), z, dependent).item()
    assert abs(est_ind) < 0.05
    assert est_dep > 0.8  # I(z; bin) = log 5 = 1.61 for a deterministic map


def test_weighted_vclub_equals_the_estimate_on_the_reweighted_sample():
    """Integer weights = repeating rows: the weighted estimate and q's weighted fit equal the plain ones on the copies."""
    torch.manual_seed(0)
    log_probs = torch.log_softmax(torch.randn(6, 3), -1)
    bins = torch.tensor([0, 2, 1, 1, 0, 2])
    counts = torch.tensor([3, 1, 1, 2, 1, 4])
    w = counts.float() / counts.sum()
    rep = torch.repeat_interleave(torch.arange(6), counts)
    assert torch.allclose(vclub_estimate(log_probs, bins, w), vclub_estimate(log_probs[rep], bins[rep]), atol=1e-6)
    z = torch.rand(6)
    q1, q2 = ReturnBinClassifier(3), ReturnBinClassifier(3)
    q2.load_state_dict(q1.state_dict())
    nll_w, _ = theta_step(q1, torch.optim.SGD(q1.parameters(), 0.1), z, bins, w)
    nll_r, _ = theta_step(q2, torch.optim.SGD(q2.parameters(), 0.1), z[rep], bins[rep])
    assert nll_w == pytest.approx(nll_r, abs=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(q1.parameters(), q2.parameters()))


def test_the_learners_vclub_weights_restore_the_datas_demo_share():
    """Balanced batches (half demos) are weighted back to the training episodes' own D^S : D^U mix."""
    from dspo.learners.dspo.discriminator import DiscriminatorLearner

    data = tiny_data(n_episodes=10, n_demos=4)  # 1 demo held out: 3 training demos, 6 unlabeled
    learner = DiscriminatorLearner(data, config(), "cpu", seed=0)
    w = learner.mixture_weights
    b = learner.cfg.batch_size
    assert w.shape == (2 * b,) and float(w.sum()) == pytest.approx(1.0)
    assert float(w[:b].sum()) == pytest.approx(3 / 9) and float(w[b:].sum()) == pytest.approx(6 / 9)
    assert DiscriminatorLearner(data, config(vclub_mixture="batch"), "cpu", seed=0).mixture_weights is None


def test_return_bins_are_equal_frequency_and_keep_ties_together():
    bins = return_bins(np.arange(100.0)[::-1], 4)
    assert bins.dtype == torch.long and torch.equal(torch.bincount(bins), torch.tensor([25, 25, 25, 25]))
    assert bins[0] == 3 and bins[-1] == 0
    tied = return_bins(np.array([1.0, 1.0, 1.0, 1.0, 5.0, 6.0]), 3)
    assert len(set(tied[:4].tolist())) == 1
    with pytest.raises(ValueError, match="n_bins >= 2"):
        return_bins(np.arange(5.0), 1)


def test_alternating_updates_touch_only_their_own_parameters():
    torch.manual_seed(0)
    model, q = SafetyTransformer(3, 2, 16, 1, 2, 6, 0.0, 8), ReturnBinClassifier(4)
    opt_phi, opt_theta = torch.optim.Adam(model.parameters(), 1e-2), torch.optim.Adam(q.parameters(), 1e-2)
    obs, act = torch.randn(6, 6, 3), torch.randn(6, 6, 2)
    steps, mask = torch.arange(6).repeat(6, 1), torch.ones(6, 6, dtype=torch.bool)
    bins, labels = torch.tensor([0, 1, 2, 3, 0, 1]), torch.tensor([1.0, 1, 1, 0, 0, 0])
    snapshot = lambda m: [p.detach().clone() for p in m.parameters()]  # noqa: E731
    same = lambda a, m: all(torch.equal(x, y) for x, y in zip(a, m.parameters()))  # noqa: E731

    logits = model(obs, act, steps, mask)
    z = torch.sigmoid(logits)
    d_before, q_before = snapshot(model), snapshot(q)
    theta_step(q, opt_theta, z, bins)  # theta step: q moves, D has no gradient and does not move
    assert same(d_before, model) and not same(q_before, q)
    assert all(p.grad is None for p in model.parameters())

    q_before = snapshot(q)
    opt_theta.zero_grad(set_to_none=True)
    loss = discriminator_loss(logits, labels) + 1.0 * vclub_penalty(q, z, bins)
    opt_phi.zero_grad(set_to_none=True)
    loss.backward()
    opt_phi.step()  # phi step: D moves, q is frozen and gets no gradient
    assert not same(d_before, model) and same(q_before, q)
    assert all(p.grad is None for p in q.parameters()) and all(p.requires_grad for p in q.parameters())


# ---------------------------------------------------------------- model


def test_preference_attention_shape_and_padding():
    torch.manual_seed(0)
    head = PreferenceAttention(16, 8)
    x, mask = torch.randn(3, 7, 16), torch.ones(3, 7, dtype=torch.bool)
    mask[1, 4:] = False
    out = head(x, mask)
    assert out.shape == (3, 7)
    x2 = x.clone()
    x2[1, 4:] = 100.0  # padded steps must not reach the valid ones
    assert torch.allclose(head(x2, mask)[1, :4], out[1, :4])


def test_gpt_is_causal_and_reads_the_action_token():
    torch.manual_seed(0)
    model = SafetyTransformer(5, 2, 32, 2, 4, 10, 0.1, 16).eval()
    obs, act, steps = torch.randn(2, 10, 5), torch.randn(2, 10, 2), torch.arange(10).repeat(2, 1)
    x = model.encode(obs, act, steps)
    obs2, act2 = obs.clone(), act.clone()
    obs2[:, 6:] += 3.0
    act2[:, 6:] -= 3.0
    x2 = model.encode(obs2, act2, steps)
    assert x.shape == (2, 10, 32)
    assert torch.allclose(x[:, :6], x2[:, :6], atol=1e-5)
    assert not torch.allclose(x[:, 6:], x2[:, 6:], atol=1e-3)
    act3 = act.clone()
    act3[:, 3] += 3.0  # x_3 is read at a_3's token, so it sees a_3
    assert not torch.allclose(model.encode(obs, act3, steps)[:, 3], x[:, 3], atol=1e-3)


def test_right_padding_does_not_change_the_logit():
    torch.manual_seed(0)
    for model in (SafetyTransformer(5, 2, 32, 2, 4, 8, 0.0, 16).eval(), MLPDiscriminator(5, 2, [32]).eval()):
        obs, act, steps = torch.randn(1, 8, 5), torch.randn(1, 8, 2), torch.arange(8)[None]
        mask = torch.arange(8)[None] < 5
        padded = model(obs, act, steps, mask)
        cut = model(obs[:, :5], act[:, :5], steps[:, :5], mask[:, :5])
        assert padded.shape == (1,) and torch.allclose(padded, cut, atol=1e-5)


def test_build_discriminator_picks_the_backbone():
    assert isinstance(build_discriminator(config(), 8, 2), SafetyTransformer)
    assert isinstance(build_discriminator(config(backbone="mlp"), 8, 2), MLPDiscriminator)


def test_covering_windows_cover_each_episode_with_full_windows():
    data = tiny_data()
    from dspo.learners.normalizers import GaussianNormalizer

    windows = EpisodeWindows(data, GaussianNormalizer.fit(np.concatenate([data.obs, data.action], 1)))
    ep, starts = windows.covering(8)
    for e in range(len(windows)):
        length = int(windows.lengths[e])
        s = starts[ep == e].tolist()
        covered = set().union(*(range(a, min(a + 8, length)) for a in s))
        assert covered == set(range(length)) and all(a + 8 <= length for a in s)
    _, _, _, mask = windows.gather(ep, starts, 8)
    assert mask.all()  # every window full (episodes here are >= 8 steps)


# ---------------------------------------------------------------- training, scoring, checkpoints


@pytest.mark.parametrize("overrides", [{}, {"backbone": "mlp", "mi_weight": 0.0},
                                       {"mi_weight": 0.0, "grad_penalty": 0.1, "steps": 20}])
def test_train_discriminator_runs_and_loss_decreases(overrides):
    data = tiny_data()
    cfg = config(**overrides)
    model, normalizer, history, selection = train_discriminator(data, cfg, "cpu", seed=0)
    assert list(history.columns) == ["step", "loss_d", "vclub", "q_acc", "holdout_rank"]
    assert history["step"].iloc[-1] == cfg.steps
    assert history["loss_d"].iloc[-1] < history["loss_d"].iloc[0]
    assert history["holdout_rank"].notna().sum() >= 1 and selection["selected_step"] in history["step"].tolist()
    assert len(selection["holdout_episode_ids"]) == 1 and len(selection["train_demo_episode_ids"]) == 3
    scores = score_episodes(model, normalizer, data, cfg.context_len)
    assert list(scores.columns) == ["episode_id", "return", "z"]
    assert sorted(scores["episode_id"]) == sorted(np.unique(data.episode_id))
    assert ((scores["z"] > 0) & (scores["z"] < 1)).all()
    np.testing.assert_allclose(scores["return"], data.episode_returns().to_numpy(), rtol=1e-5)


def test_training_is_deterministic_given_the_seed():
    cfg = config(steps=20, backbone="mlp")
    a = train_discriminator(tiny_data(), cfg, "cpu", seed=3)[2]
    b = train_discriminator(tiny_data(), cfg, "cpu", seed=3)[2]
    assert a.equals(b)


def test_a_probe_watches_the_same_training_without_changing_it():
    """disc_probe and Fig. 4 hook into the stage's loop: their columns ride along, the run is unchanged."""
    cfg = config(steps=20, backbone="mlp", eval_every=5)
    plain = train_discriminator(tiny_data(), cfg, "cpu", seed=3)
    seen = []

    def probe(learner, step):
        seen.append(step)
        return {"probe_step": float(step), "n_windows": float(len(learner.windows))}

    watched = train_discriminator(tiny_data(), cfg, "cpu", seed=3, probe=probe)
    assert seen == [5, 10, 15, 20]
    assert watched[2].drop(columns=["probe_step", "n_windows"]).equals(plain[2])
    assert watched[2].dropna(subset=["probe_step"])["step"].tolist() == seen
    assert watched[3] == plain[3]
    # no held-out demos: the probe still runs on schedule, the selection row stays empty (no NaN warnings)
    bare = train_discriminator(tiny_data(), config(steps=10, backbone="mlp", eval_every=5, holdout_demos=0), "cpu",
                               seed=3, probe=probe)[2]
    assert bare["holdout_rank"].isna().all() and bare["probe_step"].dropna().tolist() == [5.0, 10.0]


def test_checkpoint_round_trip_and_checks(tmp_path):
    data, cfg = tiny_data(), config(steps=5)
    model, normalizer, _, _ = train_discriminator(data, cfg, "cpu", seed=0)
    path = tmp_path / "disc.pt"
    save_discriminator_checkpoint(path, model, normalizer, cfg, "BallCircle")
    loaded, norm2, cfg2, _ = load_discriminator_checkpoint(path, task="BallCircle", obs_dim=8, act_dim=2)
    assert cfg2 == cfg
    np.testing.assert_allclose(score_episodes(loaded, norm2, data, 8)["z"], score_episodes(model, normalizer, data, 8)["z"])
    with pytest.raises(ValueError, match="trained for task 'BallCircle', not 'CarRun'"):
        load_discriminator_checkpoint(path, task="CarRun")
    with pytest.raises(ValueError, match="built for obs_dim=8, but task 'BallCircle' has 9"):
        load_discriminator_checkpoint(path, obs_dim=9)
    with pytest.raises(FileNotFoundError):
        load_discriminator_checkpoint(tmp_path / "missing.pt")


@pytest.mark.parametrize("key, value, message", [
    ("mi_weight", -1, "disc.mi_weight=-1: Input should be greater than or equal to 0"),
    ("return_bins", 1, "disc.return_bins=1: Input should be greater than or equal to 2"),
    ("backbone", "lstm", "disc.backbone='lstm': Input should be 'transformer' or 'mlp'"),
    ("n_heads", 3, "section 'disc': d_model=32 must be divisible by n_heads=3"),
    ("grad_penalty", -0.5, "disc.grad_penalty=-0.5: Input should be greater than or equal to 0"),
    ("class_prior", 1.5, "disc.class_prior=1.5: Input should be less than 1"),
    ("mlp_hidden", [], "disc.mlp_hidden=[]: List should have at least 1 item"),
    ("mlp_hidden", [64, 0], "disc.mlp_hidden[1]=0: Input should be greater than or equal to 1"),
    ("dropout", 1.0, "disc.dropout=1.0: Input should be less than 1"),
    ("vclub_mixture", "episodes", "disc.vclub_mixture='episodes': Input should be 'data' or 'batch'"),
    ("steps", 2.5, "disc.steps=2.5: Input should be a valid integer"),
    ("lr", True, "disc.lr=True: must be a number, got bool"),
    ("unknown_knob", 1, "unknown key disc.unknown_knob; valid keys: scorer, backbone, context_len"),
])
def test_bad_params_are_named(key, value, message):
    with pytest.raises(ParamError, match=re.escape(message)):
        config(**{key: value})


def test_missing_param_is_named():
    with pytest.raises(ParamError, match="missing disc.q_lr"):
        DiscConfig.from_section({k: v for k, v in DISC.items() if k != "q_lr"})


def test_bad_data_is_refused():
    with pytest.raises(ValueError, match="1 safe demo episode"):
        train_discriminator(tiny_data(n_demos=1), config(holdout_demos=0), "cpu")
    with pytest.raises(ParamError, match="holdout_demos=4 leaves no safe demo"):
        train_discriminator(tiny_data(), config(holdout_demos=4), "cpu")
    with pytest.raises(ParamError, match=r"context_len=30 is larger than the longest episode \(24 steps\)"):
        train_discriminator(tiny_data(), config(context_len=30), "cpu")
    model, normalizer, _, _ = train_discriminator(tiny_data(), config(steps=2), "cpu")
    other = StepData("BallCircle", **synthetic_columns(obs_dim=9))
    with pytest.raises(ValueError, match="obs/action sizes 9/2, the discriminator was built for 8/2"):
        score_episodes(model, normalizer, other, 8)


# ---------------------------------------------------------------- Fig. 4 (supervised backbones)


def test_fig4_split_is_stratified_and_gives_the_true_classes_the_training_roles():
    import pandas as pd

    from dspo.data.schemas import SAFE_DEMO, UNLABELED
    from dspo.evaluation.fig4 import supervised_split

    data = tiny_data(n_episodes=10, n_demos=4)
    is_safe = pd.Series([True] * 5 + [False] * 5, index=np.arange(10))
    train, held = supervised_split(data, is_safe, 0.6, seed=0)
    train_ids, held_ids = np.unique(train.episode_id), np.unique(held.episode_id)
    assert len(set(train_ids) & set(held_ids)) == 0 and len(train_ids) + len(held_ids) == 10
    assert is_safe[train_ids].sum() == 3 and (~is_safe[train_ids]).sum() == 3  # round(0.6 * 5) of each class
    roles = pd.Series(train.split, index=train.episode_id).groupby(level=0).first()
    assert (roles[is_safe[train_ids].to_numpy()] == SAFE_DEMO).all()
    assert (roles[~is_safe[train_ids].to_numpy()] == UNLABELED).all()
    with pytest.raises(ValueError, match="fig4 needs >= 2 training and >= 1 held-out safe episodes"):
        supervised_split(data, pd.Series([True] * 2 + [False] * 8, index=np.arange(10)), 0.6, seed=0)
    with pytest.raises(ValueError, match="no safety label for 1 dataset episode"):
        supervised_split(data, is_safe.iloc[:9], 0.6, seed=0)


def test_fig4_learns_a_separable_label_on_held_out_episodes_with_both_backbones():
    """The demos of tiny_data are shifted by +1: with those as the true safe class both backbones separate
    held-out episodes (AUROC well above chance) and report a curve per backbone."""
    import pandas as pd

    from dspo.evaluation.fig4 import Fig4Config, run_fig4

    data = tiny_data(n_episodes=16, n_demos=8, short=(15, 9))
    is_safe = pd.Series(np.arange(16) < 8, index=np.arange(16))
    cfg = Fig4Config.from_section({"backbones": ["transformer", "mlp"], "train_fraction": 0.5, "steps": 60,
                                   "eval_every": 20}, "fig4")
    result = run_fig4(data, is_safe, config(), cfg, seed=0)
    assert result["train_episodes"] == 8 and result["heldout_episodes"] == 8
    for backbone in ("transformer", "mlp"):
        res = result["backbones"][backbone]
        assert [row["step"] for row in res["curve"]] == [20, 40, 60]
        assert res["final_auroc"] > 0.8 and 0 <= res["final_accuracy"] <= 1


def test_generated_segments_are_scored_one_by_one_like_episodes():
    """score_segments: one z per [H, dim] sample, from its own steps only (no window crosses two segments)."""
    from dspo.learners.dspo.discriminator import score_segments
    from dspo.learners.dspo.safety_transformer import build_discriminator
    from dspo.learners.normalizers import GaussianNormalizer

    rng = np.random.default_rng(0)
    n, horizon, obs_dim, act_dim = 5, 12, 8, 2
    obs, act = rng.normal(size=(n, horizon, obs_dim)), rng.uniform(-1, 1, (n, horizon, act_dim))
    cfg = config(context_len=8)
    torch.manual_seed(0)
    model = build_discriminator(cfg, obs_dim, act_dim).eval()
    norm = GaussianNormalizer.fit(np.concatenate([obs, act], axis=2).reshape(n * horizon, -1))
    z = score_segments(model, norm, obs, act, cfg.context_len)
    assert z.shape == (n,) and np.unique(z).size == n and ((z > 0) & (z < 1)).all()
    alone = [score_segments(model, norm, obs[i:i + 1], act[i:i + 1], cfg.context_len)[0] for i in range(n)]
    np.testing.assert_allclose(z, alone, rtol=1e-5)

"""Conditional trajectory diffusion: schedulers, guidance, dropout, training, resumption, checkpoints, errors."""
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import dspo.learners.dspo.diffusion.trainer as diff
from dspo.core.errors import ParamError
from dspo.learners.dspo.diffusion.sampling import (GenerateConfig, condition_range, draw_conditions, guided_eps, make_scheduler,
                                                   sample_segments)
from dspo.learners.dspo.diffusion.trainer import (DiffusionConfig, SegmentDataset, load_diffusion_checkpoint,
                                                  save_diffusion_checkpoint,
                            train_diffusion)
from dspo.learners.dspo.diffusion.model import TemporalUnet
from dspo.data.schemas import StepData
from tests.conftest import synthetic_columns

H, OBS, ACT = 8, 3, 2
LOW, HIGH = -np.ones(ACT, np.float32), np.ones(ACT, np.float32)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny convs gain nothing from intra-op threads, and lose a lot when the cores are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def diffusion_params(**over):
    params = dict(horizon=H, steps=20, beta_schedule="squaredcos_cap_v2", dim=8, dim_mults=[1, 2], cond_dropout=0.25,
                  train_steps=20, batch_size=16, lr=1e-3, weight_decay=0.0, ema_decay=0.9, ema_start=5, grad_clip=1.0,
                  log_every=5, save_every=7, return_scale="minmax", clip_denoised=0.0, prediction="epsilon")
    return {**params, **over}


def generate_params(**over):
    params = dict(n_segments=5, guidance=1.5, sampler="ddim", sampling_steps=5, batch_size=2, return_condition=None,
                  return_range="demos", z_condition=None, keep_fraction=None, report_points=50)
    return {**params, **over}


def smooth_data(n_episodes=6, length=24, seed=0) -> tuple[StepData, pd.DataFrame]:
    """Sinusoid trajectories (learnable structure) with per-episode returns and z."""
    cols = synthetic_columns(n_episodes=n_episodes, length=length, obs_dim=OBS, act_dim=ACT, seed=seed)
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * np.pi, n_episodes)[cols["episode_id"]]
    t = cols["step"] * 0.3 + phase
    cols["obs"] = np.stack([np.sin(t), np.cos(t), 0.1 * cols["step"]], 1).astype(np.float32)
    cols["action"] = np.stack([0.8 * np.sin(2 * t), 0.5 * np.cos(t)], 1).astype(np.float32)
    data = StepData("BallCircle", **cols)
    cond = pd.DataFrame({"episode_id": np.arange(n_episodes), "return": data.episode_returns().to_numpy(),
                         "z": np.linspace(0.0, 1.0, n_episodes)})
    return data, cond


def make_dataset(data=None, cond=None, horizon=H):
    if data is None:
        data, cond = smooth_data()
    return SegmentDataset(data, cond, horizon, LOW, HIGH, "minmax")


class OracleEps(nn.Module):
    """A perfect ε-model for a known x0: ε = (x_t − √ᾱ_t x0) / √(1 − ᾱ_t)."""

    def __init__(self, x0: torch.Tensor, alphas_cumprod: torch.Tensor):
        super().__init__()
        self.x0, self.ab = x0, alphas_cumprod.double()
        self.horizon, self.transition_dim = x0.shape

    def forward(self, x, t, r, z, drop_mask):
        ab = self.ab[t.long()][:, None, None]
        return ((x.double() - ab.sqrt() * self.x0.double()) / (1 - ab).sqrt()).float()


# ----------------------------------------------------------------------------- schedulers
@pytest.mark.parametrize("sampler,steps", [("ddpm", 100), ("ddpm", 20), ("ddim", 20), ("ddim", 100)])
def test_perfect_eps_model_recovers_x0(sampler, steps):
    torch.manual_seed(0)
    x0 = torch.randn(H, OBS + ACT)
    ab = make_scheduler("ddpm", 100, "squaredcos_cap_v2", 0.0, "epsilon").alphas_cumprod
    out = sample_segments(OracleEps(x0, ab), np.zeros(5, np.float32), np.zeros(5, np.float32), guidance=2.0,
                          sampler=sampler, sampling_steps=steps, noise_steps=100, beta_schedule="squaredcos_cap_v2",
                          batch_size=2, device="cpu", seed=0, clip_denoised=0.0, prediction="epsilon")
    assert out.shape == (5, H, OBS + ACT)
    np.testing.assert_allclose(out, np.broadcast_to(x0.numpy(), out.shape), atol=2e-3)


def test_add_noise_matches_the_closed_form():
    sched = make_scheduler("ddpm", 100, "squaredcos_cap_v2", 0.0, "epsilon")
    x0, eps, t = torch.randn(4, H, 5), torch.randn(4, H, 5), torch.tensor([0, 10, 50, 99])
    ab = sched.alphas_cumprod[t][:, None, None]
    torch.testing.assert_close(sched.add_noise(x0, eps, t), ab.sqrt() * x0 + (1 - ab).sqrt() * eps)
    oracle = OracleEps(x0[0], sched.alphas_cumprod)
    xt = sched.add_noise(x0[0].expand(4, -1, -1), eps, t)
    torch.testing.assert_close(oracle(xt, t, None, None, None), eps, atol=1e-3, rtol=1e-3)


# ----------------------------------------------------------------------------- network and guidance
def test_unet_shape_and_size():
    net = TemporalUnet(10, 32)  # the default width
    x = torch.randn(3, 32, 10)
    out = net(x, torch.tensor([0, 5, 99]), torch.rand(3), torch.rand(3), torch.tensor([True, False, True]))
    assert out.shape == x.shape
    assert 100_000 < sum(p.numel() for p in net.parameters()) < 1_000_000
    with pytest.raises(ValueError, match="divisible"):
        TemporalUnet(10, 30, 8, [1, 2, 4])


def test_null_embedding_ignores_the_condition():
    torch.manual_seed(0)
    net = TemporalUnet(OBS + ACT, H, 8, [1, 2]).eval()
    x, t = torch.randn(4, H, OBS + ACT), torch.tensor([1, 2, 3, 4])
    drop = torch.ones(4, dtype=torch.bool)
    a = net(x, t, torch.zeros(4), torch.zeros(4), drop)
    b = net(x, t, torch.rand(4) * 5, torch.rand(4), drop)
    assert torch.equal(a, b)
    assert not torch.equal(a, net(x, t, torch.zeros(4), torch.zeros(4), ~drop))


def test_guidance_weights():
    torch.manual_seed(0)
    net = TemporalUnet(OBS + ACT, H, 8, [1, 2]).eval()
    x, t, r, z = torch.randn(4, H, OBS + ACT), torch.tensor([1, 2, 3, 4]), torch.rand(4), torch.rand(4)
    with torch.no_grad():
        uncond = net(x, t, r, z, torch.ones(4, dtype=torch.bool))
        cond = net(x, t, r, z, torch.zeros(4, dtype=torch.bool))
        assert torch.equal(guided_eps(net, x, t, r, z, 0.0), uncond)
        assert torch.equal(guided_eps(net, x, t, r, z, 1.0), cond)
        torch.testing.assert_close(guided_eps(net, x, t, r, z, 2.5), uncond + 2.5 * (cond - uncond))
    kw = dict(guidance=0.0, sampler="ddpm", sampling_steps=5, noise_steps=20, beta_schedule="squaredcos_cap_v2",
              batch_size=3, device="cpu", seed=1, clip_denoised=0.0, prediction="epsilon")
    a = sample_segments(net, np.zeros(4, np.float32), np.zeros(4, np.float32), **kw)
    b = sample_segments(net, np.ones(4, np.float32), np.full(4, 0.3, np.float32), **kw)
    np.testing.assert_array_equal(a, b)  # w = 0 is the unconditional model, whatever (r, z)
    c = sample_segments(net, np.ones(4, np.float32), np.full(4, 0.3, np.float32), **{**kw, "guidance": 1.0})
    assert not np.array_equal(a, c)


# ----------------------------------------------------------------------------- data
def test_segments_are_consecutive_steps_of_one_episode():
    data, cond = smooth_data(n_episodes=5, length=12)
    data.obs[:, 0] = data.episode_id * 1000 + data.step  # decodable (episode, step)
    data.episode_id[data.episode_id == 4] = 40
    cond.loc[cond.episode_id == 4, "episode_id"] = 40
    short = data.select(~((data.episode_id == 2) & (data.step >= H - 1)))  # episode 2: too short
    perm = np.random.default_rng(0).permutation(len(short.episode_id))  # rows in any order
    ds = make_dataset(short.select(perm), cond)
    assert ds.n_short_episodes == 1 and ds.n_windows == 4 * (12 - H + 1)
    x, c = ds.sample(256, torch.Generator().manual_seed(0))
    obs, act, _ = ds.normalizer.unnormalize(x.numpy())
    code = np.round(obs[..., 0]).astype(int)
    assert np.all(np.diff(code, axis=1) == 1)
    episodes = code[:, 0] // 1000
    assert 2 not in set(episodes) and {0, 1, 3, 4} <= set(episodes)
    raw = cond.set_index("episode_id").loc[np.where(episodes == 4, 40, episodes), "return"]
    r = ds.normalizer.normalize_return(raw)
    np.testing.assert_allclose(c[:, 0].numpy(), r, rtol=1e-5)
    assert c[:, 0].min() >= 0 and c[:, 0].max() <= 1  # minmax return scale


def test_unnormalize_clips_actions_and_counts():
    ds = make_dataset()
    x = np.zeros((2, H, OBS + ACT), np.float32)
    x[0, 0, OBS] = 1.5
    x[1, 3, OBS + 1] = -2.0
    obs, act, n_out = ds.normalizer.unnormalize(x)
    assert n_out == 2 and act.min() >= -1 and act.max() <= 1
    np.testing.assert_allclose(obs[0, 0], ds.normalizer.obs.mean, rtol=1e-6)


def test_dataset_errors():
    data, cond = smooth_data(length=6)
    with pytest.raises(ValueError, match="longer than every episode"):
        make_dataset(data, cond, horizon=H)
    data, cond = smooth_data()
    with pytest.raises(ValueError, match=r"no row for 2 episode\(s\).*\[4, 5\]"):
        make_dataset(data, cond[cond.episode_id < 4])
    bad = cond.copy()
    bad.loc[1, "z"] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        make_dataset(data, bad)
    with pytest.raises(ValueError, match="column"):
        make_dataset(data, cond.drop(columns="z"))


# ----------------------------------------------------------------------------- training
class RecordingUnet(TemporalUnet):
    seen: list

    def forward(self, x, t, r, z, drop_mask):
        self.seen.append(drop_mask.clone())
        return super().forward(x, t, r, z, drop_mask)


@pytest.mark.parametrize("rate", [0.0, 0.25, 1.0])
def test_condition_dropout_rate(monkeypatch, rate):
    seen = []

    def build(transition_dim, cfg):
        net = RecordingUnet(transition_dim, cfg.horizon, cfg.dim, cfg.dim_mults)
        net.seen = seen
        return net

    monkeypatch.setattr(diff, "build_model", build)
    cfg = DiffusionConfig.from_section(diffusion_params(cond_dropout=rate, train_steps=40, batch_size=64))
    train_diffusion(make_dataset(), cfg, "cpu", seed=0)
    drops = torch.cat(seen).float()
    assert len(drops) == 40 * 64
    assert abs(drops.mean().item() - rate) < 0.04  # 4.6 sigma at rate 0.25


def test_training_loss_decreases():
    cfg = DiffusionConfig.from_section(diffusion_params(train_steps=150, batch_size=32, log_every=10, dim=16, lr=3e-3))
    _, history = train_diffusion(make_dataset(), cfg, "cpu", seed=0)
    assert list(history.columns) == ["step", "loss"] and history["step"].iloc[-1] == 150
    assert history["loss"].iloc[-3:].mean() < 0.6 * history["loss"].iloc[0]


def test_resume_equals_uninterrupted_run(tmp_path, monkeypatch, capsys):
    ds = make_dataset()
    cfg = DiffusionConfig.from_section(diffusion_params(train_steps=20, save_every=7))
    full, full_hist = train_diffusion(ds, cfg, "cpu", seed=3)

    state = tmp_path / "state.pt"
    calls = {"n": 0}
    real_sample = ds.sample

    def crashing_sample(*args):
        calls["n"] += 1
        if calls["n"] == 11:
            raise KeyboardInterrupt  # killed during step 11: the last save is step 7
        return real_sample(*args)

    monkeypatch.setattr(ds, "sample", crashing_sample)
    with pytest.raises(KeyboardInterrupt):
        train_diffusion(ds, cfg, "cpu", seed=3, state_path=state)
    monkeypatch.setattr(ds, "sample", real_sample)
    assert torch.load(state, weights_only=False)["step"] == 7

    resumed, hist = train_diffusion(ds, cfg, "cpu", seed=3, state_path=state)
    assert "resuming from step 7" in capsys.readouterr().out
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    pd.testing.assert_frame_equal(full_hist, hist)

    longer = DiffusionConfig.from_section(diffusion_params(train_steps=25, save_every=7))  # extend a finished run
    _, hist = train_diffusion(ds, longer, "cpu", seed=3, state_path=state)
    assert "resuming from step 20" in capsys.readouterr().out and hist["step"].iloc[-1] == 25

    other = DiffusionConfig.from_section(diffusion_params(lr=5e-4))
    train_diffusion(ds, other, "cpu", seed=3, state_path=state)
    assert "starting from step 0" in capsys.readouterr().out


# ----------------------------------------------------------------------------- checkpoints and generation
def test_checkpoint_round_trip_and_refusals(tmp_path):
    ds = make_dataset()
    cfg = DiffusionConfig.from_section(diffusion_params(train_steps=3))
    model, _ = train_diffusion(ds, cfg, "cpu", seed=0)
    path = tmp_path / "diffusion.pt"
    save_diffusion_checkpoint(path, model, cfg, ds.normalizer, "BallCircle")
    bundle = load_diffusion_checkpoint(path, "BallCircle", OBS, ACT, LOW, HIGH)
    assert bundle.config == cfg and bundle.normalizer.state_dict() == ds.normalizer.state_dict()
    for a, b in zip(model.state_dict().values(), bundle.model.state_dict().values()):
        assert torch.equal(a, b)
    gen = GenerateConfig.from_section(generate_params())
    returns, z = draw_conditions(gen, (3.0, 5.0), default_z=0.7, seed=0)
    assert returns.min() >= 3 and returns.max() <= 5 and np.all(z == np.float32(0.7))
    obs, act, n_out = bundle.sample(returns, z, gen, "cpu", seed=0)
    assert obs.shape == (5, H, OBS) and act.shape == (5, H, ACT) and isinstance(n_out, int)
    assert act.min() >= -1 and act.max() <= 1

    with pytest.raises(ValueError, match="trained for task 'BallCircle', not 'CarRun'"):
        load_diffusion_checkpoint(path, "CarRun", OBS, ACT)
    with pytest.raises(ValueError, match="built for obs_dim=3, but task 'BallCircle' has 4"):
        load_diffusion_checkpoint(path, "BallCircle", OBS + 1, ACT)
    with pytest.raises(ValueError, match="action high bound"):
        load_diffusion_checkpoint(path, "BallCircle", OBS, ACT, LOW, 2 * HIGH)
    torch.save({"kind": "deterministic_policy"}, tmp_path / "policy.pt")
    with pytest.raises(ValueError, match="checkpoint kind 'deterministic_policy', expected 'trajectory_diffusion'"):
        load_diffusion_checkpoint(tmp_path / "policy.pt", "BallCircle", OBS, ACT)


def test_param_errors():
    with pytest.raises(ParamError, match=r"diffusion.cond_dropout=1.5: Input should be less than or equal to 1"):
        DiffusionConfig.from_section(diffusion_params(cond_dropout=1.5))
    with pytest.raises(ParamError, match=r"section 'diffusion': horizon=10 must be divisible by 4"):
        DiffusionConfig.from_section(diffusion_params(horizon=10, dim_mults=[1, 2, 4]))
    with pytest.raises(ParamError, match="diffusion.beta_schedule"):
        DiffusionConfig.from_section(diffusion_params(beta_schedule="cosine"))
    with pytest.raises(ParamError, match="missing diffusion.lr"):
        DiffusionConfig.from_section({k: v for k, v in diffusion_params().items() if k != "lr"})
    with pytest.raises(ParamError, match=r"generate.guidance=-1: Input should be greater than or equal to 0"):
        GenerateConfig.from_section(generate_params(guidance=-1))
    with pytest.raises(ParamError, match="generate.sampler"):
        GenerateConfig.from_section(generate_params(sampler="euler"))
    net = TemporalUnet(OBS + ACT, H, 8, [1, 2])
    kw = dict(sampler="ddim", sampling_steps=5, noise_steps=20, beta_schedule="squaredcos_cap_v2", batch_size=2,
              device="cpu", seed=0, clip_denoised=0.0, prediction="epsilon")
    with pytest.raises(ParamError, match="generate.guidance"):
        sample_segments(net, np.zeros(2), np.zeros(2), guidance=-0.5, **kw)
    with pytest.raises(ParamError, match=r"generate.sampling_steps=50 must be in \[1, 20\]"):
        sample_segments(net, np.zeros(2), np.zeros(2), guidance=1.0, **{**kw, "sampling_steps": 50})
    with pytest.raises(ValueError, match="no finite safe-demo returns"):
        condition_range(GenerateConfig.from_section(generate_params()), np.array([1.0]), np.array([0.5]),
                        np.array([False]))
    with pytest.raises(ValueError, match="no return range"):
        draw_conditions(GenerateConfig.from_section(generate_params()), None, 0.5, 0)
    with pytest.raises(ParamError, match="generate.return_range"):
        GenerateConfig.from_section(generate_params(return_range="all"))
    with pytest.raises(ParamError, match="generate.keep_fraction=0: Input should be greater than 0"):
        GenerateConfig.from_section(generate_params(keep_fraction=0))


def test_the_condition_range_reaches_the_best_episode_labeled_safe_only_when_asked():
    """demos: the demos' own range. labeled_safe: up to the best return scored at least as safe as the least
    safe demo (here 9.0, z 0.8 >= 0.6), never an episode scored below it (12.0, z 0.1)."""
    returns = np.array([3.0, 5.0, 9.0, 12.0, 1.0])
    z = np.array([0.6, 0.9, 0.8, 0.1, 0.7])
    is_demo = np.array([True, True, False, False, False])
    demos = GenerateConfig.from_section(generate_params())
    safe = GenerateConfig.from_section(generate_params(return_range="labeled_safe"))
    assert condition_range(demos, returns, z, is_demo) == (3.0, 5.0)
    assert condition_range(safe, returns, z, is_demo) == (3.0, 9.0)
    r, _ = draw_conditions(safe, condition_range(safe, returns, z, is_demo), 0.6, seed=0)
    assert r.min() >= 3.0 and r.max() <= 9.0 and r.max() > 5.0
    _, z_random = draw_conditions(GenerateConfig.from_section(generate_params(z_condition="random", n_segments=200)),
                                  (3.0, 5.0), 0.6, seed=0)
    assert z_random.min() >= 0 and z_random.max() <= 1 and z_random.std() > 0.2
    with pytest.raises(ParamError, match="generate.z_condition"):
        GenerateConfig.from_section(generate_params(z_condition="demos"))


def test_most_safe_keeps_the_top_fraction_in_order():
    from dspo.learners.dspo.diffusion.sampling import most_safe

    scores = np.array([0.1, 0.9, 0.5, 0.9, 0.2])
    assert most_safe(scores, 0.4).tolist() == [1, 3]
    assert most_safe(scores, 0.5).tolist() == [1, 2, 3]  # ceil(2.5) = 3
    assert most_safe(scores, 1.0).tolist() == [0, 1, 2, 3, 4]
    assert most_safe(scores, 0.01).tolist() == [1]  # at least one; ties keep the earlier


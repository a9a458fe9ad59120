"""The six baselines: update steps on a tiny synthetic dataset, losses, bounds, building blocks."""
import numpy as np
import pandas as pd
import pytest
import torch

from dspo.core.errors import ParamError
from dspo.data.rollout import as_episodic
from dspo.data.schemas import StepData
from dspo.learners.baselines import cdt_v as cdt
from dspo.learners.baselines import cql, dwbc, iql, rgm, td3bc
from dspo.learners.nets import TanhGaussianActor
from dspo.learners.normalizers import BoundsNormalizer, GaussianNormalizer
from dspo.learners.transitions import OfflineData, build_offline_data

# the step learners, as the registry declares them
STEP_LEARNERS = {m.ALGORITHMS[0].name: m.ALGORITHMS[0] for m in (td3bc, iql, cql, dwbc, rgm)}


def config_from_params(cls, values: dict, name: str):
    return cls.from_section(values, name)

LOW, HIGH = np.array([-2.0, 0.0], dtype=np.float32), np.array([1.0, 3.0], dtype=np.float32)
W = np.array([[0.8, -0.5], [0.3, 0.9], [-0.6, 0.2], [0.1, -0.7]], dtype=np.float32)


def expert_action(obs: np.ndarray) -> np.ndarray:
    """A known good policy in normalized units, mapped onto the odd bounds above."""
    return LOW + (np.tanh(obs @ W) + 1.0) * 0.5 * (HIGH - LOW)


def synthetic_steps(n_episodes=12, length=25, n_demos=4, seed=0) -> StepData:
    """Demos follow `expert_action`; the rest act at random. Reward = closeness to the expert."""
    rng = np.random.default_rng(seed)
    n = n_episodes * length
    episode_id = np.repeat(np.arange(n_episodes), length)
    obs = rng.standard_normal((n, 4)).astype(np.float32)
    action = np.where((episode_id < n_demos)[:, None], expert_action(obs),
                      rng.uniform(LOW, HIGH, (n, 2))).astype(np.float32)
    reward = -np.sum(((action - expert_action(obs)) / (HIGH - LOW)) ** 2, axis=1).astype(np.float32)
    truncated = np.zeros(n, dtype=bool)
    truncated[length - 1::length] = True
    return StepData("BallCircle", episode_id, np.tile(np.arange(length), n_episodes), obs, action, reward,
                    np.zeros(n, dtype=bool), truncated, np.where(episode_id < n_demos, "safe_demo", "unlabeled"))


COMMON = {"batch_size": 64, "hidden": [64, 64], "log_every": 50}
TEST_CONFIGS = {
    "td3bc": {"steps": 300, "actor_lr": 1e-3, "critic_lr": 1e-3, "gamma": 0.5, "tau": 0.05, "alpha": 2.5,
              "policy_noise": 0.2, "noise_clip": 0.5, "policy_freq": 2},
    "iql": {"steps": 300, "lr": 1e-3, "gamma": 0.5, "tau": 0.05, "expectile": 0.7, "beta": 3.0, "max_weight": 100.0,
            "normalize_reward": False},
    "cql": {"steps": 300, "policy_lr": 1e-3, "critic_lr": 1e-3, "alpha_lr": 1e-3, "gamma": 0.5, "tau": 0.05,
            "cql_weight": 1.0, "n_actions": 4, "temperature": 1.0, "bc_steps": 50},
    "dwbc": {"steps": 300, "lr": 1e-3, "disc_lr": 1e-3, "alpha": 7.5, "eta": 0.5},
    "rgm": {"steps": 300, "disc_steps": 150, "lr": 1e-3, "actor_lr": 1e-3, "correction_lr": 1e-3, "gamma": 0.5,
            "alpha": 1.0, "correction_scale": 1.0, "correction_penalty": 0.0},
}
# the loss each learner must reduce on this data (TD targets move, so not every loss is monotone)
DECREASING = {"td3bc": ["critic_loss"], "iql": ["critic_loss", "actor_loss"], "cql": ["critic_loss"],
              "dwbc": ["nll_expert"], "rgm": ["actor_loss"]}


def make_config(algo: str):
    cls = STEP_LEARNERS[algo].config
    return config_from_params(cls, {**COMMON, **TEST_CONFIGS[algo]}, algo)


@pytest.fixture(scope="module")
def offline() -> OfflineData:
    return build_offline_data(synthetic_steps(), LOW, HIGH)


@pytest.mark.parametrize("algo", list(STEP_LEARNERS))
def test_learner_losses_are_finite_decrease_and_actions_stay_in_bounds(algo, offline):
    torch.manual_seed(0)
    train = STEP_LEARNERS[algo].train
    policy, curve, _ = train(offline, make_config(algo), "cpu", desc=algo)
    losses = curve.drop(columns="step")
    assert np.isfinite(losses.to_numpy()).all(), curve
    for key in DECREASING[algo]:
        assert curve[key].iloc[-1] < curve[key].iloc[0], f"{algo}.{key} did not decrease: {curve[key].tolist()}"
    far = torch.as_tensor(np.random.default_rng(1).standard_normal((256, 4)) * 100, dtype=torch.float32)
    actions = policy(far).detach().numpy()
    assert (actions >= LOW - 1e-6).all() and (actions <= HIGH + 1e-6).all()
    assert policy.checkpoint("BallCircle")["kind"] == "deterministic_policy"


def test_imitation_baselines_move_toward_the_demos(offline):
    """DWBC and RGM see demos; after training their actions are closer to the expert's than random."""
    obs = np.random.default_rng(2).standard_normal((500, 4)).astype(np.float32)
    target = expert_action(obs)
    random_err = np.mean(np.abs(np.random.default_rng(3).uniform(LOW, HIGH, target.shape) - target))
    for algo in ("dwbc", "rgm"):
        torch.manual_seed(0)
        cfg = make_config(algo).model_copy(update={"steps": 600})
        policy, _, _ = STEP_LEARNERS[algo].train(offline, cfg, "cpu")
        err = np.mean(np.abs(policy(torch.as_tensor(obs)).detach().numpy() - target))
        assert err < 0.6 * random_err, (algo, err, random_err)


def test_transitions_drop_truncated_ends_and_keep_successors():
    steps = synthetic_steps(n_episodes=3, length=5, n_demos=1)
    steps.terminated[9] = True  # episode 1 terminates (also flagged truncated=False below)
    steps.truncated[9] = False
    data = build_offline_data(steps, LOW, HIGH)
    assert data.size == 15 - 2  # truncated last steps of episodes 0 and 2 are dropped
    done_rows = np.flatnonzero(data.done.numpy())
    assert list(data.episode_id[done_rows]) == [1] and list(data.step[done_rows]) == [4]
    # next_obs of (episode 0, step 2) is obs of (episode 0, step 3)
    row = np.flatnonzero((data.episode_id == 0) & (data.step == 2))[0]
    raw_next = data.obs_norm.normalize(steps.obs[3])
    assert np.allclose(data.next_obs[row].numpy(), raw_next, atol=1e-5)
    assert data.init_obs.shape == (3, 4)
    assert data.episode_steps == 5  # from the raw table, dropped truncated ends included
    assert data.action.abs().max() <= 1.0
    assert int(data.expert.sum()) == 4  # 5 demo steps minus the dropped truncated end


def test_config_refuses_unknown_keys_and_bad_ranges():
    good = {**COMMON, **TEST_CONFIGS["td3bc"]}
    with pytest.raises(ParamError, match=r"unknown key td3bc.alhpa; valid keys: steps, "):
        config_from_params(td3bc.TD3BCConfig, {**good, "alhpa": 1.0}, "td3bc")
    with pytest.raises(ParamError, match="td3bc.alpha=-1"):
        config_from_params(td3bc.TD3BCConfig, {**good, "alpha": -1}, "td3bc")
    with pytest.raises(ParamError, match="missing td3bc.gamma"):
        config_from_params(td3bc.TD3BCConfig, {k: v for k, v in good.items() if k != "gamma"}, "td3bc")
    with pytest.raises(ParamError, match="iql.expectile=1.5"):
        config_from_params(iql.IQLConfig, {**COMMON, **TEST_CONFIGS["iql"], "expectile": 1.5}, "iql")


def test_baselines_refuse_data_without_demos_or_without_unlabeled():
    steps = synthetic_steps(n_demos=0)
    data = build_offline_data(steps, LOW, HIGH)
    with pytest.raises(ValueError, match="DWBC needs safe demonstrations"):
        dwbc.train(data, make_config("dwbc"), "cpu")
    only_demos = build_offline_data(synthetic_steps(n_demos=12), LOW, HIGH)
    with pytest.raises(ValueError, match="RGM needs unlabeled data"):
        rgm.train(only_demos, make_config("rgm"), "cpu")


def test_expectile_loss_is_asymmetric():
    up, down = torch.tensor([1.0]), torch.tensor([-1.0])
    assert iql.expectile_loss(up, 0.7).item() == pytest.approx(0.7)
    assert iql.expectile_loss(down, 0.7).item() == pytest.approx(0.3)


def test_pu_loss_matches_its_definition():
    le, lo = torch.tensor([0.3, -1.2, 5.0]), torch.tensor([0.5, 2.0, -4.0])
    d_e, d_o = torch.sigmoid(le).clamp(0.1, 0.9), torch.sigmoid(lo).clamp(0.1, 0.9)
    direct = 0.5 * (-torch.log(d_e) + torch.log(1 - d_e)).mean() + (-torch.log(1 - d_o)).mean()
    assert dwbc.pu_discriminator_loss(le, lo, 0.5).item() == pytest.approx(direct.item(), rel=1e-5)


def test_chi2_conjugates_are_consistent():
    """f*(y) = max_x xy - f(x) for f(x) = (x-1)^2/2 (x >= 0), attained at x = f*'(y)."""
    y = torch.linspace(-0.9, 3.0, 9)
    x = rgm.chi2_f_star_prime(y)
    assert torch.allclose(x * y - rgm.chi2_f(x), rgm.chi2_f_star(y), atol=1e-6)


def test_tanh_gaussian_export_is_the_mode_and_log_prob_is_a_density():
    torch.manual_seed(0)
    actor = TanhGaussianActor(3, 1, [16])
    obs = torch.randn(5, 3)
    policy = actor.export((GaussianNormalizer(np.zeros(3, np.float32), np.ones(3, np.float32)),
                           BoundsNormalizer([-1.0], [1.0])))
    assert torch.allclose(policy(obs), actor.mode(obs), atol=1e-6)
    grid = torch.linspace(-0.999, 0.999, 4001)[:, None]
    density = actor.log_prob(obs[:1].expand(len(grid), 3), grid).exp()
    integral = torch.trapezoid(density, grid[:, 0]).item()
    assert 0.95 < integral < 1.01


def test_cql_penalty_pushes_down_out_of_distribution_actions(offline):
    """After CQL updates, Q at data actions exceeds Q at uniformly random actions."""
    torch.manual_seed(0)
    cfg = make_config("cql").model_copy(update={"cql_weight": 5.0})
    agent = cql.CQL(offline, cfg)
    for step in range(1, 301):
        agent.update(agent.batch(step), step)
    with torch.no_grad():
        q_data = torch.min(*agent.critic(offline.obs, offline.action)).mean()
        q_rand = torch.min(*agent.critic(offline.obs, torch.rand_like(offline.action) * 2 - 1)).mean()
    assert q_data > q_rand


# ----------------------------------------------------------------------------- CDT-V
@pytest.fixture(scope="module")
def correction(offline):
    torch.manual_seed(0)
    _, _, extras = rgm.train(offline, make_config("rgm"), "cpu")
    return extras["correction"]


def cdt_config(**overrides):
    values = {"steps": 200, "batch_size": 16, "lr": 1e-3, "weight_decay": 0.0, "warmup_steps": 10,
              "grad_clip": 1.0, "context_len": 5, "d_model": 32, "n_layers": 1, "n_heads": 2, "dropout": 0.0,
              "cost_target": 1.0, "log_every": 50, **overrides}
    return config_from_params(cdt.CDTConfig, values, "cdt_v")


def test_cdt_learns_and_calibrates_costs_to_kappa(offline, correction):
    torch.manual_seed(0)
    steps = synthetic_steps()
    policy, curve, extras = cdt.train(steps, correction, (offline.obs_norm, offline.act_bounds), 10.0,
                                      cdt_config(), "cpu")
    assert np.isfinite(curve["action_mse"]).all()
    assert curve["action_mse"].iloc[-1] < curve["action_mse"].iloc[0]
    # calibration: the costliest safe demo reaches exactly kappa in estimated units
    delta = cdt.corrections(correction, offline.obs_norm, offline.act_bounds, steps.obs, steps.action, steps.reward)
    c = cdt.estimated_costs(delta, extras["delta_mean"], extras["delta_std"])
    assert ((c >= 0) & (c <= 1)).all() and c.std() > 0.05  # standardized: the spread survives any shift
    demo_costs = pd.Series(c * extras["cost_unit"]).groupby(steps.episode_id).sum()[:4]
    assert demo_costs.max() == pytest.approx(10.0, rel=1e-4)


def test_cdt_policy_keeps_one_history_per_env(offline, correction):
    """Acting for env 0 alone or beside another env gives the same actions (no cross-env mixing)."""
    torch.manual_seed(0)
    policy, _, _ = cdt.train(synthetic_steps(), correction, (offline.obs_norm, offline.act_bounds), 10.0,
                             cdt_config(steps=20), "cpu")
    ckpt = policy.checkpoint("BallCircle")
    rng = np.random.default_rng(0)
    obs_seq = rng.standard_normal((8, 2, 4)).astype(np.float32)  # 8 steps, 2 envs
    solo, pair = as_episodic(cdt.CDTPolicy.from_checkpoint(ckpt)), as_episodic(cdt.CDTPolicy.from_checkpoint(ckpt))
    solo.reset(1)
    pair.reset(2)
    for t in range(8):  # longer than context_len: the window slides
        a_solo = solo.act(obs_seq[t, :1], np.array([0]))
        a_pair = pair.act(obs_seq[t], np.array([0, 1]))
        assert np.allclose(a_solo[0], a_pair[0], atol=1e-5)
        assert (a_pair >= LOW - 1e-6).all() and (a_pair <= HIGH + 1e-6).all()
        solo.observe(np.array([0]), a_solo, np.array([1.0], np.float32))
        pair.observe(np.array([0, 1]), a_pair, np.array([1.0, -3.0], np.float32))
    assert pair.rtg[0] == pytest.approx(policy.target_return - 8.0)
    assert pair.ctg[0] < policy.target_cost  # decremented by the estimated costs


def test_cdt_windows_never_cross_episodes(offline, correction):
    data = cdt.build_cdt_data(synthetic_steps(length=7), correction, offline.obs_norm, offline.act_bounds, 10.0,
                              1.0, context_len=5)
    torch.manual_seed(0)
    rtg, ctg, obs, act, ts, mask = cdt.sample_windows(data, 256, 5)
    valid_ts = torch.where(mask, ts, ts[:, :1] + torch.arange(5))
    assert (torch.diff(valid_ts, dim=1) == 1).all()  # consecutive steps of one episode
    assert (ts[mask] < 7).all()
    assert float(data.rtg.abs().max()) <= 1.0 + 1e-6  # returns-to-go scaled by the largest |episode return|

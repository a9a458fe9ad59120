"""distill.learner=dwbc: DSPO's mixture (D^S | D^G | labeled safe) as DWBC's expert set, D^U as its mixed set."""
import numpy as np
import pytest
import torch

from dspo.core.errors import DataError
from dspo.learners.baselines.dwbc import DWBCConfig
from dspo.learners.dspo.distill import DistillConfig, MixtureExpertDWBC, distill_dwbc, mixture_weights, with_expert_pairs
from dspo.learners.transitions import build_offline_data
from tests.conftest import REPO
from tests.test_baselines import HIGH, LOW, expert_action, synthetic_steps


def dwbc_config(**over) -> DWBCConfig:
    values = {"steps": 300, "batch_size": 64, "lr": 1e-3, "disc_lr": 1e-3, "hidden": [64, 64], "alpha": 7.5,
              "eta": 0.5, "log_every": 50}
    return DWBCConfig.from_section({**values, **over}, "dwbc")


@pytest.fixture(scope="module")
def offline():
    return build_offline_data(synthetic_steps(), LOW, HIGH)


def test_expert_pairs_are_appended_in_the_datas_units(offline):
    obs = np.random.default_rng(0).standard_normal((7, 4)).astype(np.float32) + 5.0
    act = np.tile(HIGH + 1.0, (7, 1))  # outside the bounds: clipped like every action
    out = with_expert_pairs(offline, obs, act)
    assert out.size == offline.size + 7 and int(out.expert.sum()) == int(offline.expert.sum()) + 7
    np.testing.assert_allclose(out.obs[-7:].numpy(), offline.obs_norm.normalize(obs), rtol=1e-6)
    np.testing.assert_allclose(out.action[-7:].numpy(), 1.0)
    assert out.obs_norm is offline.obs_norm and offline.size == len(offline.episode_id)  # the input is untouched
    with pytest.raises(DataError, match="shape mismatch"):
        with_expert_pairs(offline, obs[:, :3], act)


def test_expert_batches_follow_the_mixture_weights(offline):
    n_demo, n_gen = int(offline.expert.sum()), 500
    gen_obs = np.random.default_rng(1).standard_normal((n_gen, 4)).astype(np.float32)
    data = with_expert_pairs(offline, gen_obs, expert_action(gen_obs))
    for share in (0.1, 0.25, 0.5):
        probs = torch.as_tensor(mixture_weights(n_demo, n_gen, share), dtype=torch.float32)
        learner = MixtureExpertDWBC(data, dwbc_config(batch_size=8192), "cpu", probs)
        expert_batch, mixed_batch = learner.batch(0)
        generated = expert_batch["obs"].unsqueeze(1).eq(data.obs[-n_gen:].unsqueeze(0)).all(-1).any(-1)
        assert abs(generated.float().mean().item() - share) < 0.03, share
        assert mixed_batch["expert"].sum().item() == 0  # the mixed set is D^U only
    with pytest.raises(DataError, match="expert weights"):
        MixtureExpertDWBC(data, dwbc_config(), "cpu", probs[:-1])


def test_the_generated_share_reaches_the_policy(offline):
    """Generated pairs that all take one corner action pull the policy there in proportion to their share."""
    gen_obs = np.random.default_rng(2).standard_normal((400, 4)).astype(np.float32)
    corner = np.tile(HIGH, (400, 1))
    probe = torch.as_tensor(np.random.default_rng(3).standard_normal((300, 4)), dtype=torch.float32)
    gap = {}
    for share in (0.0, 0.8):
        torch.manual_seed(0)
        policy, curve = distill_dwbc(offline, gen_obs, corner, 400, share, 0.0, dwbc_config(steps=400), "cpu")
        assert np.isfinite(curve["mse"]).all() and {"nll_expert", "d_unlabeled"} <= set(curve.columns)
        actions = policy(probe).detach().numpy()
        assert (actions >= LOW - 1e-6).all() and (actions <= HIGH + 1e-6).all()
        gap[share] = float(np.abs(actions - HIGH).mean())
    assert gap[0.8] < 0.5 * gap[0.0], gap


def test_dwbc_distillation_refuses_data_without_unlabeled():
    only_demos = build_offline_data(synthetic_steps(n_episodes=4, n_demos=4), LOW, HIGH)
    with pytest.raises(DataError, match="unlabeled"):
        distill_dwbc(only_demos, np.zeros((0, 4), np.float32), np.zeros((0, 2), np.float32), 0, 0.0, 0.0,
                     dwbc_config(), "cpu")


def test_params_default_is_the_papers_bc():
    import yaml

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    assert DistillConfig.from_params(params).learner == "bc"  # dwbc split BallCircle and MetaDrive (METHOD §2)
    with pytest.raises(Exception, match="learner"):
        DistillConfig.from_section({**params["distill"], "learner": "iql"})

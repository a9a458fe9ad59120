import numpy as np
import pytest

from dspo.data.envs import make_env
from dspo.core.errors import UnknownTaskError
from dspo.data.envs import spaces_of
from dspo.data.tasks import BULLET, METADRIVE, SAFETY_GYM, TASKS, get_task


def test_registry_covers_three_families():
    by_family = {}
    for spec in TASKS.values():
        by_family.setdefault(spec.family, []).append(spec.name)
    assert sorted(by_family[BULLET]) == sorted(f"{r}{t}" for r in ("Ball", "Car", "Drone", "Ant") for t in ("Run", "Circle"))
    assert {"SwimmerVelocity", "HopperVelocity", "HalfCheetahVelocity", "Walker2dVelocity", "PointGoal1",
            "CarButton1"} <= set(by_family[SAFETY_GYM])
    assert len(by_family[METADRIVE]) == 9


def test_every_task_has_valid_constants():
    for spec in TASKS.values():
        assert spec.reward_max > spec.reward_min, spec.name
        assert spec.cost_limit > 0 and spec.max_episode_steps > 0, spec.name


def test_default_task_constants():
    spec = get_task("BallCircle")
    assert spec.cost_limit == 10 and spec.max_episode_steps == 200
    assert spec.normalized_reward(spec.reward_max) == pytest.approx(1.0)
    assert spec.normalized_reward(spec.reward_min) == pytest.approx(0.0)
    assert spec.normalized_cost(25.0) == pytest.approx(2.5)


def test_zero_cost_limit_uses_dsrl_offset():
    from dataclasses import replace

    spec = replace(get_task("BallCircle"), cost_limit=0.0)
    assert spec.normalized_cost(3.0) == pytest.approx(4.0)


def test_unknown_task_lists_valid_names():
    with pytest.raises(UnknownTaskError) as err:
        get_task("BallSquare")
    assert "BallCircle" in str(err.value) and "MetaDrive-easysparse" in str(err.value)


def test_bullet_env_contract_and_seeding():
    env = make_env("BallCircle")
    obs_a, _ = env.reset(seed=7)
    actions = np.random.default_rng(0).uniform(-1, 1, (30, 2)).astype(np.float32)
    traj_a = [env.step(a) for a in actions]
    obs_b, _ = env.reset(seed=7)
    traj_b = [env.step(a) for a in actions]
    np.testing.assert_array_equal(obs_a, obs_b)
    np.testing.assert_array_equal(np.stack([t[0] for t in traj_a]), np.stack([t[0] for t in traj_b]))
    assert obs_a.shape == env.observation_space.shape and obs_a.dtype == np.float32
    assert all(isinstance(t[4]["cost"], float) for t in traj_a)
    obs_c, _ = env.reset(seed=8)
    assert not np.array_equal(obs_a, obs_c)
    env.close()


def test_bullet_env_truncates_at_episode_length():
    env = make_env("BallRun", seed=0)
    spec = get_task("BallRun")
    steps = 0
    while True:
        _, _, terminated, truncated, _ = env.step(np.zeros(2, dtype=np.float32))
        steps += 1
        if terminated or truncated:
            break
    assert steps <= spec.max_episode_steps
    assert truncated or terminated
    env.close()


@pytest.mark.parametrize("name", [n for n, t in TASKS.items() if t.family == BULLET])
def test_registry_sizes_and_bounds_match_the_simulator(name):
    """Learners read sizes and action bounds from the registry, never from a live env: keep them equal."""
    spec, env = get_task(name), make_env(name)
    try:
        spaces = spaces_of(env)
    finally:
        env.close()
    assert (spec.obs_dim, spec.act_dim) == (spaces.obs_dim, spaces.act_dim)
    np.testing.assert_array_equal(spec.act_low, spaces.act_low)
    np.testing.assert_array_equal(spec.act_high, spaces.act_high)

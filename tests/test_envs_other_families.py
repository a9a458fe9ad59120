"""The env contract (see dspo/envs/__init__.py) for the safety-gymnasium and MetaDrive families.

MetaDrive allows one engine per process, so its checks run in a fresh subprocess; that also
keeps its engine out of the pytest process. All checks together take well under 60 s on CPU.
"""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dspo.data.envs import make_env
from dspo.data.tasks import get_task

REPO = Path(__file__).resolve().parents[1]


def _rollout(env, seed: int, actions) -> tuple[np.ndarray, list[float]]:
    obs, _ = env.reset(seed=seed)
    traj, costs = [obs], []
    for a in actions:
        obs, _, terminated, truncated, info = env.step(a)
        traj.append(obs)
        costs.append(info["cost"])
        if terminated or truncated:
            break
    return np.array(traj), costs


@pytest.mark.safety_gym
@pytest.mark.skipif(importlib.util.find_spec("safety_gymnasium") is None,
                    reason="safety-gymnasium not installed")
@pytest.mark.parametrize("name", ["SwimmerVelocity", "PointGoal1"])
def test_safety_gym_contract(name):
    spec = get_task(name)
    env = make_env(name, seed=0)
    try:
        obs, info = env.reset(seed=3)
        assert obs.shape == env.observation_space.shape and obs.dtype == np.float32
        assert env.observation_space.dtype == np.float32 and env.action_space.dtype == np.float32
        assert obs.shape == (spec.obs_dim,) and env.action_space.shape == (spec.act_dim,)  # the registry's sizes
        assert np.all(env.action_space.low == spec.act_low) and np.all(env.action_space.high == spec.act_high)
        assert env.observation_space.contains(obs)
        actions = [env.action_space.sample() for _ in range(30)]
        traj1, costs = _rollout(env, 11, actions)
        traj2, _ = _rollout(env, 11, actions)
        assert all(type(c) is float for c in costs)
        assert np.array_equal(traj1, traj2), "same seed and actions must give the same trajectory"
        assert not np.array_equal(traj1[0], env.reset(seed=12)[0])
        # a full episode: never terminated by these tasks under random actions, truncated at the limit
        env.reset(seed=1)
        for t in range(1, spec.max_episode_steps + 1):
            obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
            assert type(reward) is float and type(info["cost"]) is float
            if terminated or truncated:
                break
        assert truncated and not terminated and t == spec.max_episode_steps
    finally:
        env.close()


_METADRIVE_CHECK = r"""
import json, numpy as np
from dspo.data.envs import make_env
from dspo.data.tasks import get_task
name = "MetaDrive-easysparse"
spec = get_task(name)
env = make_env(name, seed=0)
out = {"obs_shape": list(env.observation_space.shape),
       "spaces_f32": env.observation_space.dtype == np.float32 and env.action_space.dtype == np.float32}
try:
    make_env(name)
    out["second_refused"] = False
except RuntimeError:
    out["second_refused"] = True
# drive forward (steer ~0, throttle > 0) so that the lidar reaches the seed-dependent traffic
acts = np.random.default_rng(0).uniform([-0.05, 0.5], [0.05, 1.0], (100, 2)).astype(np.float32)
def roll(seed):
    o, _ = env.reset(seed=seed); tr = [o]; costs = []
    for a in acts:
        o, r, te, tc, info = env.step(a); tr.append(o); costs.append(info["cost"])
        if te or tc: break
    return np.array(tr), costs
a, costs = roll(5); b, _ = roll(6); c, _ = roll(5)
out["obs_ok"] = bool(a[0].shape == env.observation_space.shape and a.dtype == np.float32
                     and env.observation_space.contains(a[0]))
out["cost_float"] = all(type(x) is float for x in costs)
out["same_seed_same_traj"] = bool(a.shape == c.shape and np.array_equal(a, c))
out["other_seed_differs"] = bool(a.shape != b.shape or not np.array_equal(a, b))
env.reset(seed=1)  # standing still: no crash, no arrival, so the episode must be truncated
for t in range(1, spec.max_episode_steps + 1):
    o, r, te, tc, info = env.step(np.zeros(2, np.float32))
    if te or tc: break
out.update(trunc_step=t, truncated=bool(tc), terminated=bool(te), max_steps=spec.max_episode_steps)
env.close()
env = make_env(name, seed=0)  # closing frees the engine for a new env
env.close()
print("RESULT " + json.dumps(out))
"""


@pytest.mark.metadrive
@pytest.mark.skipif(importlib.util.find_spec("metadrive") is None, reason="metadrive not installed")
def test_metadrive_contract():
    proc = subprocess.run([sys.executable, "-c", _METADRIVE_CHECK], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = json.loads(lines[-1][len("RESULT "):])
    assert out["obs_shape"] == [get_task("MetaDrive-easysparse").obs_dim] and out["spaces_f32"] and out["obs_ok"]
    assert out["second_refused"], "a second MetaDrive env in one process must be refused"
    assert out["cost_float"]
    assert out["same_seed_same_traj"] and out["other_seed_differs"]
    assert out["truncated"] and not out["terminated"] and out["trunc_step"] == out["max_steps"]

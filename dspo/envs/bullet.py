"""bullet-safety-gym tasks (Ball/Car/Drone/Ant x Run/Circle).

bullet-safety-gym ignores `reset(seed=...)` and draws its randomness from the global
`np.random` stream, so the wrapper seeds that stream on every seeded reset: same seed, same
episode.
"""
from __future__ import annotations

import contextlib
import random
import sys

import gymnasium as gym
import numpy as np

from dspo.tasks import TaskSpec


class SeededBulletEnv(gym.Wrapper):
    """Make `reset(seed=...)` reproducible and spaces float32 for a bullet-safety-gym env."""

    def __init__(self, env: gym.Env, max_episode_steps: int):
        super().__init__(env)
        self.observation_space = gym.spaces.Box(
            -np.inf, np.inf, shape=env.observation_space.shape, dtype=np.float32
        )
        low = np.asarray(env.action_space.low, dtype=np.float32)
        high = np.asarray(env.action_space.high, dtype=np.float32)
        self.action_space = gym.spaces.Box(low, high, dtype=np.float32)
        self._max_steps = max_episode_steps
        self._t = 0

    def reset(self, *, seed: int | None = None, options=None):
        if seed is not None:
            np.random.seed(seed)
            random.seed(seed)
            self.action_space.seed(seed)
        self._t = 0
        obs, info = self.env.reset(seed=seed, options=options)
        return np.asarray(obs, dtype=np.float32), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._t += 1
        truncated = bool(truncated) or self._t >= self._max_steps
        info["cost"] = float(info.get("cost", 0.0))
        return np.asarray(obs, dtype=np.float32), float(reward), bool(terminated), truncated, info


@contextlib.contextmanager
def _real_std_streams():
    """Put the process's real stdout/stderr in place while bullet-safety-gym builds a client.

    Its builder silences pybullet by fflush()ing the C stream named like `sys.stdout` /
    `sys.stderr` (at import and in every env constructor); under pytest or Jupyter those are
    replaced objects with no C twin and the lookup raises. The real streams always have one.
    """
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


def make_bullet_env(spec: TaskSpec) -> gym.Env:
    with _real_std_streams():
        import bullet_safety_gym  # noqa: F401  (registers the Safety*-v0 ids)

        env = gym.make(spec.env_id, max_episode_steps=spec.max_episode_steps, disable_env_checker=True)
    return SeededBulletEnv(env, spec.max_episode_steps)

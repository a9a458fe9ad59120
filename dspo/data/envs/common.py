"""The env contract every family wrapper enforces (see dspo/envs/__init__.py)."""
from __future__ import annotations

import gymnasium as gym
import numpy as np


def box32(space: gym.spaces.Box) -> gym.spaces.Box:
    """The same Box with float32 bounds and dtype (simulators differ: float64, int bounds, ...)."""
    return gym.spaces.Box(np.asarray(space.low, np.float32), np.asarray(space.high, np.float32),
                          shape=space.shape, dtype=np.float32)


class ContractWrapper(gym.Wrapper):
    """float32 spaces and observations, python-float reward and `info["cost"]`, truncation at the
    task's episode length. Subclasses add family-specific seeding in `seed_simulator`."""

    def __init__(self, env: gym.Env, max_episode_steps: int):
        super().__init__(env)
        self.observation_space = box32(env.observation_space)
        self.action_space = box32(env.action_space)
        self._max_steps = max_episode_steps
        self._t = 0

    def seed_simulator(self, seed: int) -> None:
        """Hook for simulators whose randomness `reset(seed=...)` does not reach."""

    def reset(self, *, seed: int | None = None, options=None):
        if seed is not None:
            self.seed_simulator(seed)
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

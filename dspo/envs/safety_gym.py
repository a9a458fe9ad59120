"""safety-gymnasium tasks (MuJoCo velocity tasks and Point/Car navigation tasks).

We use the `Safety...Gymnasium-v0/v1` ids, which safety-gymnasium registers with Gymnasium: they
return the 5-tuple API with `info["cost"]` (the native ids return a 6-tuple). safety-gymnasium
1.0.0 only imports on Python 3.11 after `tools/fix_safety_gymnasium.py` has patched it.
Its own `reset(seed=...)` is reproducible; the wrapper only casts spaces and values to the
pipeline's contract (float32 spaces, python-float reward and cost, truncation at the task's
`max_episode_steps`).
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np

from dspo.tasks import TaskSpec


def _f32_box(space: gym.spaces.Box) -> gym.spaces.Box:
    return gym.spaces.Box(
        np.asarray(space.low, dtype=np.float32), np.asarray(space.high, dtype=np.float32),
        shape=space.shape, dtype=np.float32,
    )


class SafetyGymEnv(gym.Wrapper):
    """Enforce the dspo env contract on a safety-gymnasium `...Gymnasium-v*` env."""

    def __init__(self, env: gym.Env, max_episode_steps: int):
        super().__init__(env)
        self.observation_space = _f32_box(env.observation_space)
        self.action_space = _f32_box(env.action_space)
        self._max_steps = max_episode_steps
        self._t = 0

    def reset(self, *, seed: int | None = None, options=None):
        if seed is not None:
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


def make_safety_gym_env(spec: TaskSpec) -> gym.Env:
    """Make `spec.env_id` (a `Safety...Gymnasium-v*` id) with the dspo contract."""
    import safety_gymnasium  # noqa: F401  (registers the Safety*Gymnasium ids with gymnasium)

    env = gym.make(spec.env_id, max_episode_steps=spec.max_episode_steps,
                   disable_env_checker=True, **spec.env_kwargs)
    return SafetyGymEnv(env, spec.max_episode_steps)

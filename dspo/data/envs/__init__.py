"""One function makes any registered task as a Gymnasium-API env with `info["cost"]`.

Every env returned by :func:`make_env` follows the same contract, whatever the family:
`reset(seed=...) -> (obs, info)` and `step(a) -> (obs, reward, terminated, truncated, info)`,
with `info["cost"]` a float, float32 Box observation/action spaces, and episodes truncated at
the task's `max_episode_steps`. Seeding is reproducible for all families (bullet-safety-gym
ignores `reset(seed=...)`, so its wrapper seeds the simulator's random streams itself).
"""
from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from dspo.core.errors import UnknownTaskError
from dspo.data.tasks import BULLET, METADRIVE, SAFETY_GYM, TaskSpec, get_task


def make_env(task: str | TaskSpec, seed: int | None = None) -> gym.Env:
    """Build the env for `task` (a name or a TaskSpec); if `seed` is given, reset once with it."""
    spec = task if isinstance(task, TaskSpec) else get_task(task)
    if spec.family == BULLET:
        from dspo.data.envs.bullet import make_bullet_env

        env = make_bullet_env(spec)
    elif spec.family == SAFETY_GYM:
        from dspo.data.envs.safety_gym import make_safety_gym_env

        env = make_safety_gym_env(spec)
    elif spec.family == METADRIVE:
        from dspo.data.envs.metadrive import make_metadrive_env

        env = make_metadrive_env(spec)
    else:  # the registry only holds the three families; guard against a bad hand-made spec
        raise UnknownTaskError(f"task {spec.name!r} has unknown family {spec.family!r}")
    if seed is not None:
        env.reset(seed=seed)
    return env


@dataclass(frozen=True)
class EnvSpaces:
    obs_dim: int
    act_low: np.ndarray
    act_high: np.ndarray

    @property
    def act_dim(self) -> int:
        return len(self.act_low)


def spaces_of(env: gym.Env) -> EnvSpaces:
    return EnvSpaces(int(env.observation_space.shape[0]), env.action_space.low.astype(np.float32),
                     env.action_space.high.astype(np.float32))


def env_spaces(task: str | TaskSpec) -> EnvSpaces:
    """Observation size and action bounds of a task (the env is built, read and closed again)."""
    env = make_env(task)
    try:
        return spaces_of(env)
    finally:
        env.close()

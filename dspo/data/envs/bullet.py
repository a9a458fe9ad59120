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

from dspo.data.envs.common import ContractWrapper
from dspo.data.tasks import TaskSpec


class SeededBulletEnv(ContractWrapper):
    """bullet-safety-gym draws from the global numpy / python streams: seed them on a seeded reset."""

    def seed_simulator(self, seed: int) -> None:
        np.random.seed(seed)
        random.seed(seed)


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

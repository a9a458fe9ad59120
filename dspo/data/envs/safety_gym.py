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

from dspo.data.envs.common import ContractWrapper
from dspo.data.tasks import TaskSpec


def make_safety_gym_env(spec: TaskSpec) -> gym.Env:
    """Make `spec.env_id` (a `Safety...Gymnasium-v*` id) with the dspo contract."""
    import safety_gymnasium  # noqa: F401  (registers the Safety*Gymnasium ids with gymnasium)

    env = gym.make(spec.env_id, max_episode_steps=spec.max_episode_steps,
                   disable_env_checker=True, **spec.env_kwargs)
    return ContractWrapper(env, spec.max_episode_steps)

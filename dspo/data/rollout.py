"""Batched, lock-step rollouts: one policy call per step for all live envs.

Both `collect` and `evaluate` use this. Simulators step one env at a time, but the policy
forward pass (the expensive part with a torch policy in the loop) is batched over `n_envs`
envs that run side by side in one process.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import numpy as np
from tqdm import tqdm

from dspo.core.errors import CheckpointMismatchError
from dspo.data.envs import make_env
from dspo.data.tasks import TaskSpec

ActFn = Callable[[np.ndarray], np.ndarray]  # (n, obs_dim) float32 -> (n, act_dim)


class EpisodicPolicy(Protocol):
    """A policy with memory (e.g. a decision transformer): told when episodes start and what happened.

    `reset(n)` when n envs start new episodes, `act(obs, env_idx)` for the live envs `env_idx`,
    `observe(env_idx, actions, rewards)` after those envs stepped. Plain `ActFn`s are wrapped.
    """

    def reset(self, n: int) -> None: ...

    def act(self, obs: np.ndarray, env_idx: np.ndarray) -> np.ndarray: ...

    def observe(self, env_idx: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> None: ...


class _Memoryless:
    def __init__(self, act_fn: ActFn):
        self.act_fn = act_fn

    def reset(self, n: int) -> None:
        pass

    def act(self, obs: np.ndarray, env_idx: np.ndarray) -> np.ndarray:
        return self.act_fn(obs)

    def observe(self, env_idx: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> None:
        pass


def as_episodic(policy: ActFn | EpisodicPolicy) -> EpisodicPolicy:
    return policy if hasattr(policy, "observe") else _Memoryless(policy)


@dataclass
class Episode:
    seed: int
    obs: np.ndarray  # (T, obs_dim) observation *before* each action
    actions: np.ndarray  # (T, act_dim), clipped to the action bounds
    rewards: np.ndarray  # (T,)
    costs: np.ndarray  # (T,)
    terminated: np.ndarray  # (T,) bool, True only possibly at the last step
    truncated: np.ndarray  # (T,) bool

    @property
    def length(self) -> int:
        return len(self.rewards)

    @property
    def reward_return(self) -> float:
        return float(self.rewards.sum())

    @property
    def cost_return(self) -> float:
        return float(self.costs.sum())


def check_obs_dim(expected: int, env_obs_dim: int, what: str, task: str) -> None:
    if expected != env_obs_dim:
        raise CheckpointMismatchError(
            f"{what} expects observations of size {expected}, but task {task!r} has size {env_obs_dim}; "
            f"was it trained on another task?"
        )


def rollout_episodes(spec: TaskSpec, act_fn: ActFn | EpisodicPolicy, seeds: Sequence[int], *, n_envs: int = 8,
                     desc: str | None = None, envs: list | None = None) -> list[Episode]:
    """Run one episode per seed with `act_fn`, `n_envs` at a time, and return them in seed order."""
    seeds = list(seeds)
    own_envs = envs is None
    if own_envs:
        n_envs = 1 if spec.one_env_per_process else n_envs
        envs = [make_env(spec) for _ in range(min(n_envs, len(seeds)))]
    low, high = envs[0].action_space.low, envs[0].action_space.high
    policy = as_episodic(act_fn)
    episodes: list[Episode] = []
    bar = tqdm(total=len(seeds), desc=desc or f"rollout {spec.name}", unit="ep", leave=False,
               disable=desc is None)
    try:
        for start in range(0, len(seeds), len(envs)):
            chunk = seeds[start:start + len(envs)]
            episodes.extend(_run_chunk(envs[:len(chunk)], chunk, policy, low, high, spec.max_episode_steps))
            bar.update(len(chunk))
    finally:
        bar.close()
        if own_envs:
            for env in envs:
                env.close()
    return episodes


def _run_chunk(envs, seeds, policy: EpisodicPolicy, low, high, max_steps) -> list[Episode]:
    n = len(envs)
    policy.reset(n)
    obs = np.stack([env.reset(seed=int(s))[0] for env, s in zip(envs, seeds)]).astype(np.float32)
    buf = {k: [[] for _ in range(n)] for k in ("obs", "act", "rew", "cost", "term", "trunc")}
    alive = np.ones(n, dtype=bool)
    for _ in range(max_steps):
        idx = np.flatnonzero(alive)
        if idx.size == 0:
            break
        actions = np.clip(np.asarray(policy.act(obs[idx], idx), dtype=np.float32), low, high)
        rewards = np.zeros(len(idx), dtype=np.float32)
        for j, i in enumerate(idx):
            next_obs, reward, terminated, truncated, info = envs[i].step(actions[j])
            buf["obs"][i].append(obs[i].copy())
            buf["act"][i].append(actions[j])
            buf["rew"][i].append(reward)
            rewards[j] = reward
            buf["cost"][i].append(info["cost"])
            buf["term"][i].append(terminated)
            buf["trunc"][i].append(truncated)
            obs[i] = next_obs
            if terminated or truncated:
                alive[i] = False
        policy.observe(idx, actions, rewards)
    episodes = []
    for i, seed in enumerate(seeds):
        trunc = np.asarray(buf["trunc"][i], dtype=bool)
        trunc[-1] = trunc[-1] or not buf["term"][i][-1]  # hit max_steps without a flag: it is a truncation
        episodes.append(Episode(
            seed=int(seed),
            obs=np.asarray(buf["obs"][i], dtype=np.float32),
            actions=np.asarray(buf["act"][i], dtype=np.float32),
            rewards=np.asarray(buf["rew"][i], dtype=np.float32),
            costs=np.asarray(buf["cost"][i], dtype=np.float32),
            terminated=np.asarray(buf["term"][i], dtype=bool),
            truncated=trunc,
        ))
    return episodes

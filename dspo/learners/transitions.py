"""The transition table the step learners (TD3+BC, IQL, CQL, DWBC, RGM) train on.

Every baseline works in normalized units: observations standardized with the dataset's mean
and std, actions mapped from the task's bounds onto [-1, 1]. The normalizers travel with the
exported policy (`DeterministicPolicy`), so evaluation feeds raw observations and gets raw
actions, exactly as for BC and DSPO.

Transitions are built from `dataset.parquet` (no cost column exists there). The dataset
stores (s_t, a_t, r_t) per step; s_{t+1} is the next row of the same episode. The last step
of an episode that was *truncated* (time limit) has no stored successor and is dropped; the
last step of a *terminated* episode keeps done = 1 (its successor is never used).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dspo.core.errors import DataError
from dspo.data.episodes import episodes_of
from dspo.data.schemas import SAFE_DEMO, StepData
from dspo.learners.contract import fit
from dspo.learners.normalizers import BoundsNormalizer, GaussianNormalizer


# ----------------------------------------------------------------------------- data
@dataclass
class OfflineData:
    """Transitions as tensors on the training device, in normalized units."""

    obs: torch.Tensor  # [N, obs_dim] standardized
    action: torch.Tensor  # [N, act_dim] in [-1, 1]
    reward: torch.Tensor  # [N] raw task reward
    next_obs: torch.Tensor  # [N, obs_dim]
    done: torch.Tensor  # [N] 1.0 where the episode terminated at this step
    expert: torch.Tensor  # [N] bool: the transition belongs to a safe demonstration (D^S)
    init_obs: torch.Tensor  # [E, obs_dim] first observation of every episode
    episode_id: np.ndarray  # [N]
    step: np.ndarray  # [N]
    episode_steps: int  # longest episode in the table (before truncated ends were dropped)
    obs_norm: GaussianNormalizer
    act_bounds: BoundsNormalizer

    @property
    def size(self) -> int:
        return int(self.obs.shape[0])

    @property
    def obs_dim(self) -> int:
        return int(self.obs.shape[1])

    @property
    def act_dim(self) -> int:
        return int(self.action.shape[1])

    def index(self, subset: str = "all") -> torch.Tensor:
        """Row indices of a subset: all | expert (D^S) | unlabeled (D^U)."""
        if subset == "all":
            return torch.arange(self.size, device=self.obs.device)
        if subset == "expert":
            return torch.nonzero(self.expert, as_tuple=False).squeeze(1)
        if subset == "unlabeled":
            return torch.nonzero(~self.expert, as_tuple=False).squeeze(1)
        raise DataError(f"unknown subset {subset!r}")

    def batch(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"obs": self.obs[rows], "action": self.action[rows], "reward": self.reward[rows],
                "next_obs": self.next_obs[rows], "done": self.done[rows], "expert": self.expert[rows].float()}

    def sample(self, batch_size: int, rows: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """A uniform minibatch (with replacement) over `rows` (default: every transition)."""
        if rows is None:
            pick = torch.randint(0, self.size, (batch_size,), device=self.obs.device)
        else:
            pick = rows[torch.randint(0, len(rows), (batch_size,), device=self.obs.device)]
        return self.batch(pick)

    def sample_init_obs(self, batch_size: int) -> torch.Tensor:
        return self.init_obs[torch.randint(0, len(self.init_obs), (batch_size,), device=self.obs.device)]


def build_offline_data(data: StepData, act_low: np.ndarray, act_high: np.ndarray,
                       device: torch.device | str = "cpu") -> OfflineData:
    """Turn the learner table into (s, a, r, s', done) transitions; refuse what cannot be learned from."""
    if len(data.obs) == 0:
        raise DataError("the dataset is empty: no transitions to learn from")
    if data.action.shape[1] != len(act_low):
        raise DataError(f"shape mismatch: actions have size {data.action.shape[1]}, the task's action space "
                         f"{len(act_low)}")
    episodes = episodes_of(data.episode_id, data.step)
    order = episodes.order
    ep, step = data.episode_id[order], data.step[order]
    obs, act, rew = data.obs[order], data.action[order], data.reward[order]
    term = data.terminated[order]
    is_last = episodes.is_last
    successor_exists = ~is_last
    keep = successor_exists | term  # truncated last steps have no successor: dropped
    next_obs = np.empty_like(obs)
    next_obs[:-1] = obs[1:]
    next_obs[is_last] = obs[is_last]  # unused: done = 1 (terminated) or dropped (truncated)
    is_first = episodes.is_first
    if not keep.any():
        raise DataError("no transition has a successor: every episode has a single step")
    obs_norm = GaussianNormalizer.fit(obs)
    bounds = BoundsNormalizer(act_low, act_high)
    expert = data.split[order] == SAFE_DEMO

    def tensor(x, dtype=torch.float32):
        return torch.as_tensor(np.ascontiguousarray(x), dtype=dtype, device=device)

    return OfflineData(
        obs=tensor(obs_norm.normalize(obs[keep])),
        action=tensor(bounds.normalize(np.clip(act[keep], act_low, act_high))),
        reward=tensor(rew[keep]),
        next_obs=tensor(obs_norm.normalize(next_obs[keep])),
        done=tensor(term[keep] & is_last[keep]),
        expert=tensor(expert[keep], dtype=torch.bool),
        init_obs=tensor(obs_norm.normalize(obs[is_first])),
        episode_id=ep[keep], step=step[keep], episode_steps=int(step.max()) + 1, obs_norm=obs_norm,
        act_bounds=bounds,
    )


def require_expert_data(data: OfflineData, algo: str, minimum: int = 2) -> None:
    n = int(data.expert.sum())
    if n < minimum:
        raise DataError(f"{algo} needs safe demonstrations (D^S) in the dataset, found {n} transitions")
    if n == data.size:
        raise DataError(f"{algo} needs unlabeled data (D^U) besides the demonstrations; the dataset has none")


def train_step_learner(learner_cls, data: OfflineData, cfg, device, desc: str):
    """Build `learner_cls(data, cfg, device)`, fit it for `cfg.steps`; return (exported policy, curve, extras)."""
    agent = learner_cls(data, cfg, device)
    curve = fit(agent, cfg.steps, cfg.log_every, desc)
    return agent.export(), curve, {}

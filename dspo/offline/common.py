"""Shared pieces of the baseline learners: typed configs, the transition table, small networks.

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

import dataclasses
import math
from dataclasses import dataclass, fields
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import trange

from dspo.config import ParamError, require, require_int_list
from dspo.models.mlp import DeterministicPolicy, mlp
from dspo.normalizers import BoundsNormalizer, GaussianNormalizer
from dspo.schemas import SAFE_DEMO, StepData


# ----------------------------------------------------------------------------- configs
def param(minimum: float | None = None, *, strict: bool = False, maximum: float | None = None):
    """A config field with a range; `config_from_params` checks it and names `section.key` on failure.

    Every field comes from params.yaml (no defaults in code); None only marks "not set yet".
    """
    return dataclasses.field(default=None, metadata={"minimum": minimum, "strict": strict, "maximum": maximum})


def config_from_params(cls, cfg: dict, section_name: str):
    """Build dataclass `cls` from a params.yaml section, checking types, ranges and unknown keys."""
    if not isinstance(cfg, dict):
        raise ParamError(f"params.yaml: section {section_name!r} must be a mapping")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(cfg) - names)
    if unknown:
        raise ParamError(f"params.yaml: unknown key(s) {unknown} in {section_name}; valid: {sorted(names)}")
    values = {}
    for f in fields(cls):
        meta = f.metadata
        kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        if kind == "list[int]":
            values[f.name] = require_int_list(cfg, f.name, section_name)
        elif kind == "bool":
            values[f.name] = require(cfg, f.name, section_name, kind=bool)
        else:
            py_kind = int if kind == "int" else (int, float)
            value = require(cfg, f.name, section_name, kind=py_kind, minimum=meta.get("minimum"),
                            maximum=meta.get("maximum"), strict_min=meta.get("strict", False))
            values[f.name] = value if kind == "int" else float(value)
    return cls(**values)


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
        raise ValueError(f"unknown subset {subset!r}")

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
        raise ValueError("the dataset is empty: no transitions to learn from")
    if data.action.shape[1] != len(act_low):
        raise ValueError(f"shape mismatch: actions have size {data.action.shape[1]}, the task's action space "
                         f"{len(act_low)}")
    order = np.lexsort((data.step, data.episode_id))
    ep, step = data.episode_id[order], data.step[order]
    obs, act, rew = data.obs[order], data.action[order], data.reward[order]
    term = data.terminated[order]
    is_last = np.ones(len(ep), dtype=bool)
    is_last[:-1] = ep[1:] != ep[:-1]
    successor_exists = ~is_last
    keep = successor_exists | term  # truncated last steps have no successor: dropped
    next_obs = np.empty_like(obs)
    next_obs[:-1] = obs[1:]
    next_obs[is_last] = obs[is_last]  # unused: done = 1 (terminated) or dropped (truncated)
    is_first = np.ones(len(ep), dtype=bool)
    is_first[1:] = ep[1:] != ep[:-1]
    if not keep.any():
        raise ValueError("no transition has a successor: every episode has a single step")
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
        raise ValueError(f"{algo} needs safe demonstrations (D^S) in the dataset, found {n} transitions")
    if n == data.size:
        raise ValueError(f"{algo} needs unlabeled data (D^U) besides the demonstrations; the dataset has none")


# ----------------------------------------------------------------------------- networks
class DeterministicActor(nn.Module):
    """a = tanh(f(s)) in normalized units; exported as a DeterministicPolicy with the same weights."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: list[int]):
        super().__init__()
        self.hidden = list(hidden)
        self.net = mlp(obs_dim, hidden, act_dim)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(obs))

    def export(self, data_or_norms) -> DeterministicPolicy:
        obs_norm, bounds = _norms(data_or_norms)
        policy = DeterministicPolicy(obs_norm, bounds, self.hidden)
        policy.net.load_state_dict(self.net.state_dict())
        return policy.cpu().eval()


LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0
ACTION_EPS = 1e-6


class TanhGaussianActor(nn.Module):
    """SAC-style squashed Gaussian. Evaluation uses the mode tanh(mean), exported as a DeterministicPolicy."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: list[int]):
        super().__init__()
        self.hidden, self.act_dim = list(hidden), act_dim
        self.net = mlp(obs_dim, hidden, 2 * act_dim)

    def _dist(self, obs):
        mean, log_std = self.net(obs).chunk(2, dim=-1)
        return torch.distributions.Normal(mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX).exp())

    def sample(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparametrized action in (-1, 1) and its log-density (summed over action dims)."""
        dist = self._dist(obs)
        raw = dist.rsample()
        return torch.tanh(raw), (dist.log_prob(raw) - _tanh_log_det(raw)).sum(-1)

    def log_prob(self, obs: torch.Tensor, action: torch.Tensor, per_dim: bool = False) -> torch.Tensor:
        """log pi(a|s) of dataset actions (clipped just inside (-1, 1) so atanh is finite)."""
        raw = torch.atanh(action.clamp(-1 + ACTION_EPS, 1 - ACTION_EPS))
        logp = self._dist(obs).log_prob(raw) - _tanh_log_det(raw)
        return logp if per_dim else logp.sum(-1)

    def mode(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self._dist(obs).mean)

    def export(self, data_or_norms) -> DeterministicPolicy:
        obs_norm, bounds = _norms(data_or_norms)
        policy = DeterministicPolicy(obs_norm, bounds, self.hidden)
        state = {k: v.clone() for k, v in self.net.state_dict().items()}
        last = str(len(self.net) - 1)
        state[f"{last}.weight"] = state[f"{last}.weight"][: self.act_dim]
        state[f"{last}.bias"] = state[f"{last}.bias"][: self.act_dim]
        policy.net.load_state_dict(state)
        return policy.cpu().eval()


def _tanh_log_det(raw: torch.Tensor) -> torch.Tensor:
    # log(1 - tanh(x)^2), numerically stable form
    return 2.0 * (math.log(2.0) - raw - nn.functional.softplus(-2.0 * raw))


def _norms(data_or_norms) -> tuple[GaussianNormalizer, BoundsNormalizer]:
    if isinstance(data_or_norms, OfflineData):
        return data_or_norms.obs_norm, data_or_norms.act_bounds
    return data_or_norms


class TwinQ(nn.Module):
    """Two independent Q(s, a) heads (clipped double-Q)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: list[int]):
        super().__init__()
        self.q1 = mlp(obs_dim + act_dim, hidden, 1)
        self.q2 = mlp(obs_dim + act_dim, hidden, 1)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([obs, action], dim=-1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)


class ValueNet(nn.Module):
    def __init__(self, in_dim: int, hidden: list[int]):
        super().__init__()
        self.net = mlp(in_dim, hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


@torch.no_grad()
def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    for t, s in zip(target.parameters(), source.parameters()):
        t.lerp_(s, tau)


def step_optimizer(optim: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    optim.zero_grad(set_to_none=True)
    loss.backward()
    optim.step()


# ----------------------------------------------------------------------------- loop
def run_updates(update: Callable[[int], dict[str, float]], steps: int, log_every: int,
                desc: str) -> pd.DataFrame:
    """Call `update(step)` `steps` times; return the per-`log_every` mean of every logged loss."""
    history, sums, count = [], {}, 0
    for step in trange(1, steps + 1, desc=desc, leave=False, mininterval=1.0):
        logs = update(step)
        for key, value in logs.items():
            sums[key] = sums.get(key, 0.0) + float(value)
        count += 1
        if step % log_every == 0 or step == steps:
            history.append({"step": step, **{k: v / count for k, v in sums.items()}})
            sums, count = {}, 0
    return pd.DataFrame(history)


def fit(agent, data: OfflineData, steps: int, log_every: int, desc: str):
    """Run `agent.update` for `steps` minibatches; return its exported policy and loss curve."""
    curve = run_updates(lambda step: agent.update(data, step), steps, log_every, desc)
    return agent.export(data), curve

"""The networks the learners share: plain MLPs, the deployed deterministic policy, actors and critics.

Learners work in normalized units (observations standardized, actions on [-1, 1]); the
normalizers travel with the exported `DeterministicPolicy`, so evaluation feeds raw
observations and gets raw actions for every MLP-policy algorithm alike.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from dspo.learners.normalizers import BoundsNormalizer, GaussianNormalizer

MAX_TIMESTEP = 1024  # timestep-embedding table size of the sequence models; later steps share the last row


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, dropout: float = 0.0) -> nn.Sequential:
    layers: list[nn.Module] = []
    last = in_dim
    for width in hidden:
        layers += [nn.Linear(last, width), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        last = width
    layers.append(nn.Linear(last, out_dim))
    return nn.Sequential(*layers)


class DeterministicPolicy(nn.Module):
    """pi(s): normalized obs -> MLP -> tanh -> action bounds. Normalizers are part of the module."""

    def __init__(self, obs_norm: GaussianNormalizer, act_bounds: BoundsNormalizer, hidden: Sequence[int]):
        super().__init__()
        self.obs_norm = obs_norm
        self.act_bounds = act_bounds
        self.hidden = list(hidden)
        self.net = mlp(len(obs_norm.mean), hidden, len(act_bounds.low))

    @property
    def obs_dim(self) -> int:
        return len(self.obs_norm.mean)

    @property
    def act_dim(self) -> int:
        return len(self.act_bounds.low)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.act_bounds.unnormalize(torch.tanh(self.net(self.obs_norm.normalize(obs))))

    def checkpoint(self, task: str, extra: dict | None = None) -> dict:
        return {
            "kind": "deterministic_policy",
            "task": task,
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
            "hidden": self.hidden,
            "obs_norm": self.obs_norm.state_dict(),
            "act_bounds": self.act_bounds.state_dict(),
            "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()},
            **(extra or {}),
        }

    @classmethod
    def from_checkpoint(cls, ckpt: dict) -> "DeterministicPolicy":
        policy = cls(GaussianNormalizer.from_state_dict(ckpt["obs_norm"]),
                     BoundsNormalizer.from_state_dict(ckpt["act_bounds"]), ckpt["hidden"])
        policy.load_state_dict(ckpt["state_dict"])
        return policy


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
    """(obs normalizer, action bounds) of an OfflineData-like object, or the pair itself."""
    if hasattr(data_or_norms, "obs_norm"):
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

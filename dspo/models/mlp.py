"""Plain MLPs and the deterministic BC policy."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from dspo.normalizers import BoundsNormalizer, GaussianNormalizer


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

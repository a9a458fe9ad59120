"""Normalizers that travel with a checkpoint, so a saved model is self-describing (Diffuser style)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class GaussianNormalizer:
    """x -> (x - mean) / std per feature; constant features get std 1 so they map to 0, not inf."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, eps: float = 1e-6) -> "GaussianNormalizer":
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] == 0:
            raise ValueError(f"GaussianNormalizer.fit needs a non-empty 2-D array, got shape {x.shape}")
        std = x.std(axis=0)
        std = np.where(std < eps, 1.0, std)
        return cls(x.mean(axis=0).astype(np.float32), std.astype(np.float32))

    def normalize(self, x):
        if isinstance(x, torch.Tensor):
            return (x - torch.as_tensor(self.mean, device=x.device)) / torch.as_tensor(self.std, device=x.device)
        return (x - self.mean) / self.std

    def unnormalize(self, x):
        if isinstance(x, torch.Tensor):
            return x * torch.as_tensor(self.std, device=x.device) + torch.as_tensor(self.mean, device=x.device)
        return x * self.std + self.mean

    def state_dict(self) -> dict:
        return {"kind": "gaussian", "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_state_dict(cls, state: dict) -> "GaussianNormalizer":
        return cls(np.asarray(state["mean"], dtype=np.float32), np.asarray(state["std"], dtype=np.float32))


@dataclass
class BoundsNormalizer:
    """Affine map of [low, high] onto [-1, 1] per feature (actions, diffusion targets)."""

    low: np.ndarray
    high: np.ndarray

    def __post_init__(self):
        self.low = np.asarray(self.low, dtype=np.float32)
        self.high = np.asarray(self.high, dtype=np.float32)
        if self.low.shape != self.high.shape or np.any(self.high <= self.low):
            raise ValueError("BoundsNormalizer needs low < high elementwise with equal shapes")

    def normalize(self, x):
        low, high = self._bounds(x)
        return 2.0 * (x - low) / (high - low) - 1.0

    def unnormalize(self, x):
        low, high = self._bounds(x)
        return (x + 1.0) * 0.5 * (high - low) + low

    def _bounds(self, x):
        if isinstance(x, torch.Tensor):
            return torch.as_tensor(self.low, device=x.device), torch.as_tensor(self.high, device=x.device)
        return self.low, self.high

    def state_dict(self) -> dict:
        return {"kind": "bounds", "low": self.low.tolist(), "high": self.high.tolist()}

    @classmethod
    def from_state_dict(cls, state: dict) -> "BoundsNormalizer":
        return cls(state["low"], state["high"])

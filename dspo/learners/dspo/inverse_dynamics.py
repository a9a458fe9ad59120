"""Inverse dynamics g(s_t, s_{t+1}) -> a_t, fitted on real consecutive pairs of dataset.parquet (no cost needed).

Why: BC fits a policy to (s, a) pairs. A joint (s, a) diffusion sample gives states and actions together, and
nothing forces a_t to be the action that takes s_t to s_{t+1}; measured (scripts/generation_probe.py), generated
actions sit ~3x further from what their own transitions imply than real ones do. Two uses: the probe scores
how consistent generated actions are (real held-out episodes are the yardstick: behavior actions carry
exploration noise, so it is not zero), and `distill.actions: inverse_dynamics` relabels every generated action
with g before distillation -- the Decision Diffuser recipe (states from the diffusion model, actions from
inverse dynamics) without retraining the diffusion model.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from dspo.core.errors import DataError
from dspo.data.episodes import episodes_of
from dspo.learners.nets import mlp, step_optimizer
from dspo.learners.normalizers import GaussianNormalizer


@dataclass
class InverseDynamics:
    net: torch.nn.Module
    norm: GaussianNormalizer  # over the concatenated (s_t, s_{t+1})

    @torch.no_grad()
    def predict(self, s: np.ndarray, s_next: np.ndarray) -> np.ndarray:
        """g(s, s'): the action that takes s to s' (in [-1, 1])."""
        x = torch.as_tensor(self.norm.normalize(np.concatenate([s, s_next], axis=1)), dtype=torch.float32)
        return torch.tanh(self.net(x)).numpy()

    def action_error(self, s: np.ndarray, s_next: np.ndarray, a: np.ndarray) -> np.ndarray:
        """Per row: mean absolute difference between `a` and g(s, s') (action units, bounds [-1, 1])."""
        return np.abs(self.predict(s, s_next) - a).mean(axis=1)


def consecutive(episode_id: np.ndarray, step: np.ndarray, obs: np.ndarray, action: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(s_t, s_{t+1}, a_t, episode id) of every step that has a successor in its episode."""
    ep = episodes_of(episode_id, step)
    rows = ep.order[~ep.is_last]
    nxt = ep.order[np.flatnonzero(~ep.is_last) + 1]
    return obs[rows], obs[nxt], action[rows], episode_id[rows]


def segment_transitions(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(s_t, s_{t+1}) for every step of segments [n, H, dim] that has a successor (H - 1 per segment)."""
    return obs[:, :-1].reshape(-1, obs.shape[-1]), obs[:, 1:].reshape(-1, obs.shape[-1])


def segment_pairs(obs: np.ndarray, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(s_t, s_{t+1}, a_t) inside generated segments [n, H, dim]."""
    return (*segment_transitions(obs), action[:, :-1].reshape(-1, action.shape[-1]))


def fit_inverse_dynamics(s: np.ndarray, s_next: np.ndarray, a: np.ndarray, hidden: Sequence[int], steps: int,
                         batch_size: int, lr: float, seed: int) -> InverseDynamics:
    """g(s, s') -> a by mean squared error on tanh outputs (every registered task's actions live in [-1, 1])."""
    if len(s) == 0:
        raise DataError("inverse dynamics: no consecutive pairs to fit on (every episode has one step)")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x_np = np.concatenate([s, s_next], axis=1)
    norm = GaussianNormalizer.fit(x_np)
    x = torch.as_tensor(norm.normalize(x_np), dtype=torch.float32)
    y = torch.as_tensor(np.clip(a, -1, 1), dtype=torch.float32)
    net = mlp(x.shape[1], hidden, y.shape[1])
    optim = torch.optim.Adam(net.parameters(), lr=lr)
    for _ in range(steps):
        idx = torch.as_tensor(rng.integers(0, len(x), size=batch_size))
        step_optimizer(optim, ((torch.tanh(net(x[idx])) - y[idx]) ** 2).mean())
    return InverseDynamics(net.eval(), norm)


def generated_segments(segment_id: np.ndarray, step: np.ndarray, obs: np.ndarray, action: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    """A generated table's rows as [n_segments, H, dim] arrays, in (segment, step) order."""
    order = np.lexsort((step, segment_id))
    n = len(np.unique(segment_id))
    if n == 0 or len(order) % n:
        raise DataError(f"generated table: {len(order)} rows do not split into {n} equal segments")
    return obs[order].reshape(n, len(order) // n, -1), action[order].reshape(n, len(order) // n, -1)


def relabel(model: InverseDynamics, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(s_t, g(s_t, s_{t+1})) for every step of segments [n, H, dim] that has a successor (H - 1 per segment)."""
    if obs.shape[1] < 2:
        raise DataError("distill.actions=inverse_dynamics needs segments of at least 2 steps (diffusion.horizon)")
    s, s_next = segment_transitions(obs)
    return s, model.predict(s, s_next).astype(np.float32)

"""Are generated actions the actions that move the generated states? (A diagnostic, no oracle needed.)

BC fits a policy to (s, a) pairs. A diffusion sample gives states and actions together, and nothing
forces a_t to be the action that takes s_t to s_{t+1}. An inverse-dynamics model g(s_t, s_{t+1}) -> a_t,
fitted on real consecutive pairs, says how far each action is from what its transition implies. Real
held-out episodes give the yardstick (behavior actions carry exploration noise, so it is not zero);
generated segments far above it teach BC actions the simulator would not reproduce.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dspo.data.episodes import episodes_of
from dspo.learners.nets import mlp, step_optimizer
from dspo.learners.normalizers import GaussianNormalizer


@dataclass
class InverseDynamics:
    net: torch.nn.Module
    norm: GaussianNormalizer  # over the concatenated (s_t, s_{t+1})

    @torch.no_grad()
    def action_error(self, s: np.ndarray, s_next: np.ndarray, a: np.ndarray) -> np.ndarray:
        """Per row: mean absolute difference between `a` and g(s, s') (action units, bounds [-1, 1])."""
        x = torch.as_tensor(self.norm.normalize(np.concatenate([s, s_next], axis=1)), dtype=torch.float32)
        pred = torch.tanh(self.net(x)).numpy()
        return np.abs(pred - a).mean(axis=1)


def consecutive(episode_id: np.ndarray, step: np.ndarray, obs: np.ndarray, action: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(s_t, s_{t+1}, a_t, episode id) of every step that has a successor in its episode."""
    ep = episodes_of(episode_id, step)
    rows = ep.order[~ep.is_last]
    nxt = ep.order[np.flatnonzero(~ep.is_last) + 1]
    return obs[rows], obs[nxt], action[rows], episode_id[rows]


def segment_pairs(obs: np.ndarray, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(s_t, s_{t+1}, a_t) inside generated segments [n, H, dim]."""
    return (obs[:, :-1].reshape(-1, obs.shape[-1]), obs[:, 1:].reshape(-1, obs.shape[-1]),
            action[:, :-1].reshape(-1, action.shape[-1]))


def fit_inverse_dynamics(s: np.ndarray, s_next: np.ndarray, a: np.ndarray, hidden: tuple[int, ...] = (256, 256),
                         steps: int = 3000, batch_size: int = 512, lr: float = 1e-3, seed: int = 0) -> InverseDynamics:
    """g(s, s') -> a by mean squared error on tanh outputs (actions live in [-1, 1])."""
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

"""IQL (Kostrikov et al., 2021): expectile value learning + advantage-weighted regression.

Reward-only baseline on D^S and D^U. Defaults are the paper's locomotion settings (expectile
0.7, inverse temperature 3, weights clipped at 100, tau 0.005, gamma 0.99, Adam 3e-4,
256-256 MLPs, batch 256, rewards scaled by 1000 / (max - min episode return) -- here by
`episode_steps / (max - min)`, the longest episode in the data, since ours are not 1000 steps long).
Simplification: the actor is deterministic, trained by exp(beta * A)-weighted MSE (the
fixed-variance Gaussian of AWR; CORL offers the same choice); no cosine actor-lr decay.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

from dspo.offline.common import (DeterministicActor, OfflineData, TwinQ, ValueNet, param, fit,
                                 soft_update, step_optimizer)


@dataclass
class IQLConfig:
    steps: int = param(1)
    batch_size: int = param(1)
    lr: float = param(0, strict=True)
    hidden: list[int] = param()
    gamma: float = param(0, maximum=1)
    tau: float = param(0, strict=True, maximum=1)
    expectile: float = param(0, strict=True, maximum=1)
    beta: float = param(0)
    max_weight: float = param(0, strict=True)
    normalize_reward: bool = param()
    log_every: int = param(1)


def expectile_loss(diff: torch.Tensor, expectile: float) -> torch.Tensor:
    """Asymmetric L2: |tau - 1(u < 0)| u^2, the expectile regression loss of IQL."""
    weight = torch.where(diff > 0, expectile, 1.0 - expectile)
    return (weight * diff ** 2).mean()


def reward_scale(data: OfflineData) -> float:
    """IQL's locomotion normalization: rewards * episode steps / (max - min episode return)."""
    returns = np.bincount(np.unique(data.episode_id, return_inverse=True)[1], weights=data.reward.cpu().numpy())
    spread = float(returns.max() - returns.min())
    return data.episode_steps / spread if spread > 0 else 1.0


class IQL:
    def __init__(self, obs_dim: int, act_dim: int, cfg: IQLConfig, device: torch.device | str = "cpu",
                 reward_scale: float = 1.0):
        self.cfg, self.reward_scale = cfg, reward_scale
        self.actor = DeterministicActor(obs_dim, act_dim, cfg.hidden).to(device)
        self.critic = TwinQ(obs_dim, act_dim, cfg.hidden).to(device)
        self.critic_target = copy.deepcopy(self.critic)
        self.value = ValueNet(obs_dim, cfg.hidden).to(device)
        self.actor_optim = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr)
        self.critic_optim = torch.optim.Adam(self.critic.parameters(), lr=cfg.lr)
        self.value_optim = torch.optim.Adam(self.value.parameters(), lr=cfg.lr)

    def update(self, data: OfflineData, step: int) -> dict[str, float]:
        cfg = self.cfg
        b = data.sample(cfg.batch_size)
        with torch.no_grad():
            target_q = torch.min(*self.critic_target(b["obs"], b["action"]))
            next_v = self.value(b["next_obs"])
        adv = target_q - self.value(b["obs"])
        value_loss = expectile_loss(adv, cfg.expectile)
        step_optimizer(self.value_optim, value_loss)

        target = b["reward"] * self.reward_scale + cfg.gamma * (1.0 - b["done"]) * next_v
        q1, q2 = self.critic(b["obs"], b["action"])
        critic_loss = ((q1 - target) ** 2).mean() + ((q2 - target) ** 2).mean()
        step_optimizer(self.critic_optim, critic_loss)
        soft_update(self.critic_target, self.critic, cfg.tau)

        weight = torch.exp(cfg.beta * adv.detach()).clamp(max=cfg.max_weight)
        actor_loss = (weight * ((self.actor(b["obs"]) - b["action"]) ** 2).sum(-1)).mean()
        step_optimizer(self.actor_optim, actor_loss)
        return {"value_loss": value_loss.item(), "critic_loss": critic_loss.item(), "actor_loss": actor_loss.item(),
                "mean_weight": weight.mean().item()}

    def export(self, data: OfflineData):
        return self.actor.export(data)


def train(data: OfflineData, cfg: IQLConfig, device, desc: str = "iql"):
    scale = reward_scale(data) if cfg.normalize_reward else 1.0
    policy, curve = fit(IQL(data.obs_dim, data.act_dim, cfg, device, reward_scale=scale), data, cfg.steps,
                        cfg.log_every, desc)
    return policy, curve, {"reward_scale": scale}

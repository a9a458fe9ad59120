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
from typing import ClassVar

import numpy as np
import torch

from dspo.core.config import Bool, NonNegFloat, OpenUnitFloat, PosFloat, PosInt, Section, UnitFloat, Widths
from dspo.learners.contract import Algorithm, BASELINE, fit
from dspo.learners.nets import DeterministicActor, TwinQ, ValueNet, soft_update, step_optimizer
from dspo.learners.transitions import OfflineData


class IQLConfig(Section):
    section: ClassVar[str] = "iql"
    steps: PosInt
    batch_size: PosInt
    lr: PosFloat
    hidden: Widths
    gamma: UnitFloat
    tau: OpenUnitFloat
    expectile: OpenUnitFloat
    beta: NonNegFloat
    max_weight: PosFloat
    normalize_reward: Bool
    log_every: PosInt


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
    def __init__(self, data: OfflineData, cfg: IQLConfig, device: torch.device | str = "cpu",
                 reward_scale: float = 1.0):
        self.data, self.cfg, self.reward_scale = data, cfg, reward_scale
        obs_dim, act_dim = data.obs_dim, data.act_dim
        self.actor = DeterministicActor(obs_dim, act_dim, cfg.hidden).to(device)
        self.critic = TwinQ(obs_dim, act_dim, cfg.hidden).to(device)
        self.critic_target = copy.deepcopy(self.critic)
        self.value = ValueNet(obs_dim, cfg.hidden).to(device)
        self.actor_optim = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr)
        self.critic_optim = torch.optim.Adam(self.critic.parameters(), lr=cfg.lr)
        self.value_optim = torch.optim.Adam(self.value.parameters(), lr=cfg.lr)

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        return self.data.sample(self.cfg.batch_size)

    def update(self, b: dict[str, torch.Tensor], step: int) -> dict[str, float]:
        cfg = self.cfg
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

    def export(self):
        return self.actor.export(self.data)


def train(data: OfflineData, cfg: IQLConfig, device, desc: str = "iql"):
    scale = reward_scale(data) if cfg.normalize_reward else 1.0
    agent = IQL(data, cfg, device, reward_scale=scale)
    curve = fit(agent, cfg.steps, cfg.log_every, desc)
    return agent.export(), curve, {"reward_scale": scale}


ALGORITHMS = (Algorithm("iql", "IQL", BASELINE, "iql", IQLConfig, train, IQL),)

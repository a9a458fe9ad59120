"""TD3+BC (Fujimoto & Gu, 2021): TD3 with a behavior-cloning term and Q normalized by lambda.

Reward-only baseline: it sees the task reward on D^S and D^U and nothing about cost.
Defaults are the paper's (alpha 2.5, policy noise 0.2 clipped at 0.5, delayed actor updates
every 2 steps, tau 0.005, gamma 0.99, Adam 3e-4, 256-256 MLPs, batch 256, standardized
states). Only the number of gradient steps is cut (1M in the paper) to fit a CPU budget.
Actions live in [-1, 1] (the paper's max_action = 1 after our bounds normalization).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from dspo.offline.common import (DeterministicActor, OfflineData, TwinQ, param, fit, soft_update,
                                 step_optimizer)


@dataclass
class TD3BCConfig:
    steps: int = param(1)
    batch_size: int = param(1)
    actor_lr: float = param(0, strict=True)
    critic_lr: float = param(0, strict=True)
    hidden: list[int] = param()
    gamma: float = param(0, maximum=1)
    tau: float = param(0, strict=True, maximum=1)
    alpha: float = param(0)
    policy_noise: float = param(0)
    noise_clip: float = param(0)
    policy_freq: int = param(1)
    log_every: int = param(1)


class TD3BC:
    def __init__(self, obs_dim: int, act_dim: int, cfg: TD3BCConfig, device: torch.device | str = "cpu"):
        self.cfg = cfg
        self.actor = DeterministicActor(obs_dim, act_dim, cfg.hidden).to(device)
        self.actor_target = copy.deepcopy(self.actor)
        self.critic = TwinQ(obs_dim, act_dim, cfg.hidden).to(device)
        self.critic_target = copy.deepcopy(self.critic)
        self.actor_optim = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.critic_optim = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr)
        self._last_actor_logs = {"actor_loss": 0.0, "bc_mse": 0.0}

    def update(self, data: OfflineData, step: int) -> dict[str, float]:
        cfg = self.cfg
        b = data.sample(cfg.batch_size)
        with torch.no_grad():
            noise = (torch.randn_like(b["action"]) * cfg.policy_noise).clamp(-cfg.noise_clip, cfg.noise_clip)
            next_action = (self.actor_target(b["next_obs"]) + noise).clamp(-1.0, 1.0)
            target_q = torch.min(*self.critic_target(b["next_obs"], next_action))
            target = b["reward"] + cfg.gamma * (1.0 - b["done"]) * target_q
        q1, q2 = self.critic(b["obs"], b["action"])
        critic_loss = ((q1 - target) ** 2).mean() + ((q2 - target) ** 2).mean()
        step_optimizer(self.critic_optim, critic_loss)
        if step % cfg.policy_freq == 0:
            pi = self.actor(b["obs"])
            q = self.critic(b["obs"], pi)[0]
            lam = cfg.alpha / q.abs().mean().detach().clamp_min(1e-6)
            bc_mse = ((pi - b["action"]) ** 2).mean()
            actor_loss = -lam * q.mean() + bc_mse
            step_optimizer(self.actor_optim, actor_loss)
            soft_update(self.critic_target, self.critic, cfg.tau)
            soft_update(self.actor_target, self.actor, cfg.tau)
            self._last_actor_logs = {"actor_loss": actor_loss.item(), "bc_mse": bc_mse.item()}
        return {"critic_loss": critic_loss.item(), "q_mean": q1.mean().item(), **self._last_actor_logs}

    def export(self, data: OfflineData):
        return self.actor.export(data)


def train(data: OfflineData, cfg: TD3BCConfig, device, desc: str = "td3bc"):
    policy, curve = fit(TD3BC(data.obs_dim, data.act_dim, cfg, device), data, cfg.steps, cfg.log_every, desc)
    return policy, curve, {}

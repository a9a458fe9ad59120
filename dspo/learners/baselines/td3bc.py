"""TD3+BC (Fujimoto & Gu, 2021): TD3 with a behavior-cloning term and Q normalized by lambda.

Reward-only baseline: it sees the task reward on D^S and D^U and nothing about cost.
Defaults are the paper's (alpha 2.5, policy noise 0.2 clipped at 0.5, delayed actor updates
every 2 steps, tau 0.005, gamma 0.99, Adam 3e-4, 256-256 MLPs, batch 256, standardized
states). Only the number of gradient steps is cut (1M in the paper) to fit a CPU budget.
Actions live in [-1, 1] (the paper's max_action = 1 after our bounds normalization).
"""
from __future__ import annotations

import copy
from typing import ClassVar

import torch

from dspo.core.config import NonNegFloat, OpenUnitFloat, PosFloat, PosInt, Section, UnitFloat, Widths
from dspo.learners.contract import BASELINE, Algorithm
from dspo.learners.nets import DeterministicActor, TwinQ, soft_update, step_optimizer
from dspo.learners.transitions import OfflineData, train_step_learner


class TD3BCConfig(Section):
    section: ClassVar[str] = "td3bc"
    steps: PosInt
    batch_size: PosInt
    actor_lr: PosFloat
    critic_lr: PosFloat
    hidden: Widths
    gamma: UnitFloat
    tau: OpenUnitFloat
    alpha: NonNegFloat
    policy_noise: NonNegFloat
    noise_clip: NonNegFloat
    policy_freq: PosInt
    log_every: PosInt


class TD3BC:
    def __init__(self, data: OfflineData, cfg: TD3BCConfig, device: torch.device | str = "cpu"):
        self.data, self.cfg = data, cfg
        obs_dim, act_dim = data.obs_dim, data.act_dim
        self.actor = DeterministicActor(obs_dim, act_dim, cfg.hidden).to(device)
        self.actor_target = copy.deepcopy(self.actor)
        self.critic = TwinQ(obs_dim, act_dim, cfg.hidden).to(device)
        self.critic_target = copy.deepcopy(self.critic)
        self.actor_optim = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.critic_optim = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr)
        self._last_actor_logs = {"actor_loss": 0.0, "bc_mse": 0.0}

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        return self.data.sample(self.cfg.batch_size)

    def update(self, b: dict[str, torch.Tensor], step: int) -> dict[str, float]:
        cfg = self.cfg
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

    def export(self):
        return self.actor.export(self.data)


def train(data: OfflineData, cfg: TD3BCConfig, device, desc: str = "td3bc"):
    return train_step_learner(TD3BC, data, cfg, device, desc)


ALGORITHMS = (Algorithm("td3bc", "TD3+BC", BASELINE, "td3bc", TD3BCConfig, train, TD3BC),)

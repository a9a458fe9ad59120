"""CQL (Kumar et al., 2020), the SAC variant CQL(H) with importance-sampled log-sum-exp.

Reward-only baseline on D^S and D^U. Defaults follow the authors' continuous-control code:
conservative weight 5, 10 sampled actions per state (uniform, pi(s), pi(s')), temperature 1,
automatic entropy tuning with target -|A|, policy lr 1e-4, critic lr 3e-4, tau 0.005, gamma
0.99, 256-unit MLPs, batch 256, and a behavior-cloning warm-up of the actor
(`bc_steps`; the authors use 40k of 1M steps -- both are scaled down here for a CPU budget).
No Lagrange version (fixed conservative weight), no max-backup, no entropy in the backup.
"""
from __future__ import annotations

import copy
import math
from typing import ClassVar

import torch

from dspo.core.config import NonNegFloat, NonNegInt, OpenUnitFloat, PosFloat, PosInt, Section, UnitFloat, Widths
from dspo.learners.contract import BASELINE, Algorithm
from dspo.learners.nets import TanhGaussianActor, TwinQ, soft_update, step_optimizer
from dspo.learners.transitions import OfflineData, train_step_learner


class CQLConfig(Section):
    section: ClassVar[str] = "cql"
    steps: PosInt
    batch_size: PosInt
    policy_lr: PosFloat
    critic_lr: PosFloat
    alpha_lr: PosFloat
    hidden: Widths
    gamma: UnitFloat
    tau: OpenUnitFloat
    cql_weight: NonNegFloat
    n_actions: PosInt
    temperature: PosFloat
    bc_steps: NonNegInt
    log_every: PosInt


class CQL:
    def __init__(self, data: OfflineData, cfg: CQLConfig, device: torch.device | str = "cpu"):
        obs_dim, act_dim = data.obs_dim, data.act_dim
        self.data, self.cfg, self.act_dim = data, cfg, act_dim
        self.actor = TanhGaussianActor(obs_dim, act_dim, cfg.hidden).to(device)
        self.critic = TwinQ(obs_dim, act_dim, cfg.hidden).to(device)
        self.critic_target = copy.deepcopy(self.critic)
        self.log_alpha = torch.zeros((), device=device, requires_grad=True)
        self.target_entropy = -float(act_dim)
        self.actor_optim = torch.optim.Adam(self.actor.parameters(), lr=cfg.policy_lr)
        self.critic_optim = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr)
        self.alpha_optim = torch.optim.Adam([self.log_alpha], lr=cfg.alpha_lr)

    def _q_on_sampled(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Q of [B, n, act] actions at [B, obs] states -> two [B, n] tensors, in one batched call."""
        batch, n, _ = actions.shape
        rep = obs[:, None, :].expand(batch, n, obs.shape[-1])
        q1, q2 = self.critic(rep.reshape(batch * n, -1), actions.reshape(batch * n, -1))
        return q1.view(batch, n), q2.view(batch, n)

    def _policy_actions(self, obs: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        batch = obs.shape[0]
        rep = obs[:, None, :].expand(batch, n, obs.shape[-1]).reshape(batch * n, -1)
        act, logp = self.actor.sample(rep)
        return act.view(batch, n, -1), logp.view(batch, n)

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        return self.data.sample(self.cfg.batch_size)

    def update(self, b: dict[str, torch.Tensor], step: int) -> dict[str, float]:
        cfg = self.cfg
        obs, act = b["obs"], b["action"]

        # actor and entropy temperature
        new_act, logp = self.actor.sample(obs)
        alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()
        step_optimizer(self.alpha_optim, alpha_loss)
        alpha = self.log_alpha.exp().detach()
        if step <= cfg.bc_steps:
            actor_loss = (alpha * logp - self.actor.log_prob(obs, act)).mean()
        else:
            actor_loss = (alpha * logp - torch.min(*self.critic(obs, new_act))).mean()
        step_optimizer(self.actor_optim, actor_loss)

        # critic: TD + conservative penalty
        with torch.no_grad():
            next_act, _ = self.actor.sample(b["next_obs"])
            target_q = torch.min(*self.critic_target(b["next_obs"], next_act))
            target = b["reward"] + cfg.gamma * (1.0 - b["done"]) * target_q
            rand_act = torch.rand(obs.shape[0], cfg.n_actions, self.act_dim, device=obs.device) * 2.0 - 1.0
            cur_act, cur_logp = self._policy_actions(obs, cfg.n_actions)
            nxt_act, nxt_logp = self._policy_actions(b["next_obs"], cfg.n_actions)
        q1, q2 = self.critic(obs, act)
        td_loss = ((q1 - target) ** 2).mean() + ((q2 - target) ** 2).mean()
        rand_logp = torch.full_like(cur_logp, self.act_dim * math.log(0.5))  # uniform density on [-1, 1]^|A|
        # one critic pass over all 3n sampled actions per state
        q1_s, q2_s = self._q_on_sampled(obs, torch.cat([rand_act, cur_act, nxt_act], dim=1))
        log_density = torch.cat([rand_logp, cur_logp, nxt_logp], dim=1)
        penalties = []
        for q_data, q_sampled in ((q1, q1_s), (q2, q2_s)):
            lse = torch.logsumexp((q_sampled - log_density) / cfg.temperature, dim=1) * cfg.temperature
            penalties.append((lse - q_data).mean())
        cql_gap = penalties[0] + penalties[1]
        critic_loss = td_loss + cfg.cql_weight * cql_gap
        step_optimizer(self.critic_optim, critic_loss)
        soft_update(self.critic_target, self.critic, cfg.tau)
        return {"critic_loss": critic_loss.item(), "td_loss": td_loss.item(), "cql_gap": cql_gap.item(),
                "actor_loss": actor_loss.item(), "alpha": alpha.item(), "q_mean": q1.mean().item()}

    def export(self):
        return self.actor.export(self.data)


def train(data: OfflineData, cfg: CQLConfig, device, desc: str = "cql"):
    return train_step_learner(CQL, data, cfg, device, desc)


ALGORITHMS = (Algorithm("cql", "CQL", BASELINE, "cql", CQLConfig, train, CQL),)

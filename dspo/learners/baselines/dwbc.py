"""DWBC (Xu et al., 2022): discriminator-weighted behavior cloning from expert + mixed data.

D^S plays the expert set, D^U the mixed set. A discriminator d(s, a, log pi(a|s)) is trained
with the positive-unlabeled loss  eta * E_S[-log d + log(1 - d)] + E_U[-log(1 - d)],  and the
policy with  alpha * E_S[-log pi] - E_S[-log pi * eta / (d (1 - d))] + E_U[-log pi / (1 - d)]
with d clipped to [0.1, 0.9] and detached, as in the authors' code. log pi enters the
discriminator per action dimension, clipped to [-20, 10] and scaled to [0, 1] (the authors'
normalization), and detached.
Defaults (paper): alpha 7.5, eta 0.5 (alpha must exceed eta / (0.9 * 0.1) = 5.6, or the
expert NLL gets a negative weight and the policy diverges), Adam 1e-4 (policy and discriminator), batch 256 from each set,
256-256 MLPs. The policy is a tanh-Gaussian; evaluation uses its mode tanh(mean).
Nothing in DWBC knows about cost: it imitates whatever looks like the demos, which is why
the DSPO paper expects it to be unsafe where unsafe high-return data resemble them.
"""
from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from dspo.core.config import NonNegFloat, OpenUnitFloat, PosFloat, PosInt, Section, Widths
from dspo.learners.contract import BASELINE, Algorithm
from dspo.learners.nets import TanhGaussianActor, mlp, step_optimizer
from dspo.learners.transitions import OfflineData, require_expert_data, train_step_learner

LOG_PI_MIN, LOG_PI_MAX = -20.0, 10.0
D_CLIP = (0.1, 0.9)


class DWBCConfig(Section):
    section: ClassVar[str] = "dwbc"
    steps: PosInt
    batch_size: PosInt
    lr: PosFloat
    disc_lr: PosFloat
    hidden: Widths
    alpha: NonNegFloat
    eta: OpenUnitFloat
    log_every: PosInt


class PUDiscriminator(nn.Module):
    """Logit of d(s, a, log pi): (s, a) and the normalized per-dimension log pi, concatenated."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: list[int]):
        super().__init__()
        self.net = mlp(obs_dim + 2 * act_dim, hidden, 1)

    def forward(self, obs, action, log_pi) -> torch.Tensor:
        log_pi = (log_pi.clamp(LOG_PI_MIN, LOG_PI_MAX) - LOG_PI_MIN) / (LOG_PI_MAX - LOG_PI_MIN)
        return self.net(torch.cat([obs, action, log_pi], dim=-1)).squeeze(-1)


def pu_discriminator_loss(logit_expert: torch.Tensor, logit_mixed: torch.Tensor, eta: float) -> torch.Tensor:
    """eta * E_S[-log d + log(1-d)] + E_U[-log(1-d)] with d clipped to [0.1, 0.9].

    The unclipped PU loss is unbounded below (d -> 1 on D^S drives log(1 - d) to -inf); clipping
    d, as the policy weights are clipped, keeps it bounded and stops the gradient outside the clip.
    """
    d_e = torch.sigmoid(logit_expert).clamp(*D_CLIP)
    d_o = torch.sigmoid(logit_mixed).clamp(*D_CLIP)
    expert_term = -torch.log(d_e) + torch.log(1.0 - d_e)
    return eta * expert_term.mean() - torch.log(1.0 - d_o).mean()


class DWBC:
    def __init__(self, data: OfflineData, cfg: DWBCConfig, device: torch.device | str = "cpu"):
        self.data, self.cfg = data, cfg
        obs_dim, act_dim = data.obs_dim, data.act_dim
        self.actor = TanhGaussianActor(obs_dim, act_dim, cfg.hidden).to(device)
        self.disc = PUDiscriminator(obs_dim, act_dim, cfg.hidden).to(device)
        self.actor_optim = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr)
        self.disc_optim = torch.optim.Adam(self.disc.parameters(), lr=cfg.disc_lr)
        self.rows = (data.index("expert"), data.index("unlabeled"))

    def batch(self, step: int) -> tuple[dict, dict]:
        """A D^S batch and a D^U batch of `batch_size` each."""
        return self.data.sample(self.cfg.batch_size, self.rows[0]), self.data.sample(self.cfg.batch_size, self.rows[1])

    def update(self, batch: tuple[dict, dict], step: int) -> dict[str, float]:
        cfg = self.cfg
        e, o = batch
        logp_e = self.actor.log_prob(e["obs"], e["action"], per_dim=True)
        logp_o = self.actor.log_prob(o["obs"], o["action"], per_dim=True)

        logit_e = self.disc(e["obs"], e["action"], logp_e.detach())
        logit_o = self.disc(o["obs"], o["action"], logp_o.detach())
        disc_loss = pu_discriminator_loss(logit_e, logit_o, cfg.eta)
        step_optimizer(self.disc_optim, disc_loss)

        d_e = torch.sigmoid(logit_e).detach().clamp(*D_CLIP)
        d_o = torch.sigmoid(logit_o).detach().clamp(*D_CLIP)
        nll_e, nll_o = -logp_e.sum(-1), -logp_o.sum(-1)
        actor_loss = (cfg.alpha * nll_e.mean() - (nll_e * cfg.eta / (d_e * (1.0 - d_e))).mean()
                      + (nll_o / (1.0 - d_o)).mean())
        step_optimizer(self.actor_optim, actor_loss)
        return {"disc_loss": disc_loss.item(), "actor_loss": actor_loss.item(), "nll_expert": nll_e.mean().item(),
                "d_expert": d_e.mean().item(), "d_unlabeled": d_o.mean().item()}

    def export(self):
        return self.actor.export(self.data)


def train(data: OfflineData, cfg: DWBCConfig, device, desc: str = "dwbc"):
    require_expert_data(data, "DWBC")
    return train_step_learner(DWBC, data, cfg, device, desc)


ALGORITHMS = (Algorithm("dwbc", "DWBC", BASELINE, "dwbc", DWBCConfig, train, DWBC),)

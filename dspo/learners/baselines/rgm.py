"""RGM (Li et al., 2023, "Mind the Gap"): reward-gap minimization by bi-level optimization.

The task reward r is treated as *imperfect*; RGM learns a correction Delta r(s, a, r) such that
the pessimistic optimal policy for r + Delta r matches the expert's visitation (D^S), then
extracts that policy by weighted BC. Following the authors' implementation:

1. a classifier c(s, a) separates D^S from D = D^S u D^U (balanced BCE), giving the density
   ratio d^E/d^D = c / (1 - c);
2. lower level (pessimistic RL, DICE dual with chi^2 divergence to the data): V minimizes
   (1 - gamma) E_{s0}[V(s0)] + alpha E_D[f*(A)],  A = (r + Delta r + gamma V(s') - V(s)) / alpha,
   f*(y) = y^2 / 2 + y, and the optimal visitation ratio is w = f*'(A) = relu(A + 1);
3. upper level: Delta r minimizes D_f(d^pi || d^E) = E_D[(d^E/d^D) f(w d^D/d^E)], f(x) = (x-1)^2/2,
   with V held fixed (the authors' alternating first-order scheme);
4. the policy is w-weighted BC (self-normalized weights), deterministic actor.

Simplifications and stabilizers: Delta r = scale * tanh(MLP(s, a, r)) (the authors' bounded
residual) plus an optional L2 penalty on it, and Delta r enters the advantage *centered on the
batch*. Its level is absorbed by V (V moves by shift / (1 - gamma)), so without centering the two
levels drift along that direction: on BallCircle the tanh correction saturated at -1 for every
transition within a few hundred steps, and an unbounded one drifted to -3e4; centered but
unbounded, the expert-side correction grew without limit (w ~ rho ~ 30-100 on demo transitions
is what the upper level asks for). Also: rewards standardized before use, the density ratio clipped to [1e-2, 1e2],
constant learning rates (no cosine schedule), and a CPU-sized number of steps.
The learned correction is saved beside the policy: CDT-V reads it as its transition cost.
"""
from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from dspo.core.config import NonNegFloat, PosFloat, PosInt, Section, UnitFloat, Widths
from dspo.core.artifacts import load_checkpoint
from dspo.learners.contract import BASELINE, Algorithm, FunctionLearner, fit
from dspo.learners.nets import DeterministicActor, ValueNet, mlp, step_optimizer
from dspo.learners.normalizers import BoundsNormalizer, GaussianNormalizer
from dspo.learners.transitions import OfflineData, require_expert_data

RATIO_CLIP = (1e-2, 1e2)
CORRECTION_KIND = "rgm_reward_correction"


class RGMConfig(Section):
    section: ClassVar[str] = "rgm"
    steps: PosInt
    disc_steps: PosInt
    batch_size: PosInt
    lr: PosFloat
    actor_lr: PosFloat
    correction_lr: PosFloat
    hidden: Widths
    gamma: UnitFloat
    alpha: PosFloat
    correction_scale: PosFloat
    correction_penalty: NonNegFloat
    log_every: PosInt


class RewardCorrection(nn.Module):
    """Delta r(s, a, r) = scale * tanh(MLP([s, a, r_std])), standardized reward units; carries its standardization."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: list[int], scale: float, reward_mean: float = 0.0,
                 reward_std: float = 1.0):
        super().__init__()
        self.hidden, self.scale = list(hidden), float(scale)
        self.reward_mean, self.reward_std = float(reward_mean), float(reward_std)
        self.net = mlp(obs_dim + act_dim + 1, hidden, 1)

    def standardize(self, reward: torch.Tensor) -> torch.Tensor:
        return (reward - self.reward_mean) / self.reward_std

    def forward(self, obs: torch.Tensor, action: torch.Tensor, reward: torch.Tensor) -> torch.Tensor:
        x = torch.cat([obs, action, self.standardize(reward)[:, None]], dim=-1)
        return self.scale * torch.tanh(self.net(x).squeeze(-1))

    def checkpoint(self, task: str, obs_norm: GaussianNormalizer, act_bounds, obs_dim: int, act_dim: int) -> dict:
        return {"kind": CORRECTION_KIND, "task": task, "obs_dim": obs_dim, "act_dim": act_dim,
                "hidden": self.hidden, "scale": self.scale, "reward_mean": self.reward_mean,
                "reward_std": self.reward_std, "obs_norm": obs_norm.state_dict(), "act_bounds": act_bounds.state_dict(),
                "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()}}

    @classmethod
    def load(cls, path, task: str) -> tuple["RewardCorrection", tuple[GaussianNormalizer, BoundsNormalizer]]:
        """The correction saved by train_rgm and the (obs, action) normalizers it was trained with."""
        ckpt = load_checkpoint(path, CORRECTION_KIND, task=task, producer="train_rgm")
        norms = (GaussianNormalizer.from_state_dict(ckpt["obs_norm"]), BoundsNormalizer.from_state_dict(ckpt["act_bounds"]))
        return cls.from_checkpoint(ckpt), norms

    @classmethod
    def from_checkpoint(cls, ckpt: dict) -> "RewardCorrection":
        model = cls(ckpt["obs_dim"], ckpt["act_dim"], ckpt["hidden"], ckpt["scale"], ckpt["reward_mean"],
                    ckpt["reward_std"])
        model.load_state_dict(ckpt["state_dict"])
        return model.eval()


def chi2_f(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (x - 1.0) ** 2


def chi2_f_star(y: torch.Tensor) -> torch.Tensor:
    return 0.5 * y ** 2 + y


def chi2_f_star_prime(y: torch.Tensor) -> torch.Tensor:
    return F.relu(y + 1.0)


class RGM:
    def __init__(self, data: OfflineData, cfg: RGMConfig, device: torch.device | str = "cpu",
                 reward_mean: float = 0.0, reward_std: float = 1.0):
        self.data, self.cfg = data, cfg
        obs_dim, act_dim = data.obs_dim, data.act_dim
        self.classifier = mlp(obs_dim + act_dim, cfg.hidden, 1).to(device)
        self.value = ValueNet(obs_dim, cfg.hidden).to(device)
        self.correction = RewardCorrection(obs_dim, act_dim, cfg.hidden, cfg.correction_scale, reward_mean,
                                           reward_std).to(device)
        self.actor = DeterministicActor(obs_dim, act_dim, cfg.hidden).to(device)
        self.classifier_optim = torch.optim.Adam(self.classifier.parameters(), lr=cfg.lr)
        self.value_optim = torch.optim.Adam(self.value.parameters(), lr=cfg.lr)
        self.correction_optim = torch.optim.Adam(self.correction.parameters(), lr=cfg.correction_lr)
        self.actor_optim = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.expert_rows = data.index("expert")

    def classifier_batch(self, step: int) -> tuple[dict, dict]:
        return self.data.sample(self.cfg.batch_size, self.expert_rows), self.data.sample(self.cfg.batch_size)

    def classifier_update(self, batch: tuple[dict, dict], step: int) -> dict[str, float]:
        """Balanced BCE: D^S (label 1) vs the whole dataset D (label 0) -> logit = log d^E/d^D."""
        e, d = batch
        logit_e = self.classifier(torch.cat([e["obs"], e["action"]], -1)).squeeze(-1)
        logit_d = self.classifier(torch.cat([d["obs"], d["action"]], -1)).squeeze(-1)
        loss = F.softplus(-logit_e).mean() + F.softplus(logit_d).mean()
        step_optimizer(self.classifier_optim, loss)
        return {"classifier_loss": loss.item()}

    def _advantage(self, b, correction: torch.Tensor, v: torch.Tensor, next_v: torch.Tensor) -> torch.Tensor:
        # The correction enters centered on the batch: a constant shift of Delta r is absorbed by V
        # (V moves by shift / (1 - gamma)) and is a direction the two levels can drift along forever.
        reward = self.correction.standardize(b["reward"]) + correction - correction.mean()
        return (reward + self.cfg.gamma * (1.0 - b["done"]) * next_v - v) / self.cfg.alpha

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        """A transition batch and a batch of initial states (the DICE objective's (1 - gamma) E[V(s0)])."""
        b = self.data.sample(self.cfg.batch_size)
        b["init_obs"] = self.data.sample_init_obs(self.cfg.batch_size)
        return b

    def update(self, b: dict[str, torch.Tensor], step: int) -> dict[str, float]:
        cfg = self.cfg
        with torch.no_grad():
            log_ratio = self.classifier(torch.cat([b["obs"], b["action"]], -1)).squeeze(-1)
            ratio_e_d = log_ratio.exp().clamp(*RATIO_CLIP)  # d^E / d^D
            v_fixed, next_v_fixed = self.value(b["obs"]), self.value(b["next_obs"])

        # upper level: the correction moves the induced visitation toward the expert's
        correction = self.correction(b["obs"], b["action"], b["reward"])
        w = chi2_f_star_prime(self._advantage(b, correction, v_fixed, next_v_fixed))
        upper_loss = (ratio_e_d * chi2_f(w / ratio_e_d)).mean() + cfg.correction_penalty * (correction ** 2).mean()
        step_optimizer(self.correction_optim, upper_loss)

        # lower level: DICE dual for V with the (now fixed) corrected reward
        with torch.no_grad():
            correction = self.correction(b["obs"], b["action"], b["reward"])
        init_v = self.value(b["init_obs"])
        adv = self._advantage(b, correction, self.value(b["obs"]), self.value(b["next_obs"]))
        value_loss = (1.0 - cfg.gamma) * init_v.mean() + cfg.alpha * chi2_f_star(adv).mean()
        step_optimizer(self.value_optim, value_loss)

        # policy extraction: w-weighted BC, self-normalized over the batch
        weight = chi2_f_star_prime(adv.detach()) + 1e-20
        weight = weight / weight.sum()
        actor_loss = (weight * ((self.actor(b["obs"]) - b["action"]) ** 2).sum(-1)).sum()
        step_optimizer(self.actor_optim, actor_loss)
        expert = b["expert"]
        n_e = expert.sum().clamp_min(1.0)
        n_u = (1.0 - expert).sum().clamp_min(1.0)
        return {"upper_loss": upper_loss.item(), "value_loss": value_loss.item(), "actor_loss": actor_loss.item(),
                "correction_expert": (correction * expert).sum().item() / n_e.item(),
                "correction_unlabeled": (correction * (1 - expert)).sum().item() / n_u.item(),
                "w_expert": (w.detach() * expert).sum().item() / n_e.item(),
                "w_unlabeled": (w.detach() * (1 - expert)).sum().item() / n_u.item()}

    def export(self):
        return self.actor.export(self.data)


def train(data: OfflineData, cfg: RGMConfig, device, desc: str = "rgm"):
    require_expert_data(data, "RGM")
    reward = data.reward
    agent = RGM(data, cfg, device, float(reward.mean()), float(reward.std().clamp_min(1e-6)))
    disc_curve = fit(FunctionLearner(agent.classifier_update, agent.classifier_batch), cfg.disc_steps,
                     cfg.log_every, f"{desc} classifier")
    curve = fit(agent, cfg.steps, cfg.log_every, desc)
    return agent.export(), curve, {"correction": agent.correction.cpu().eval(),
                                   "classifier_loss": float(disc_curve["classifier_loss"].iloc[-1])}


ALGORITHMS = (Algorithm("rgm", "RGM", BASELINE, "rgm", RGMConfig, train, RGM),)

"""DSPO's safety score z from RGM's learned reward correction (`disc.scorer: rgm`), instead of the discriminator.

Why: minus RGM's reward correction, summed over an episode, out-labels DSPO's discriminator on five of six suite
tasks (BallCircle AUROC 0.957 vs 0.861; reports/METHOD.md §1). RGM learns from D^S and D^U only, so the score is
cost-label-free. What RGM adds over a D^S-vs-D classifier is its lower level: a pessimistic value fit whose optimal
visitation must match the demos', so a transition is charged for where it leads, not only for how it looks.

The scorer is RGM's first two stages trained per learner seed with the RGM baseline's own `rgm.*` settings (no settings
of its own, so the comparison with the discriminator is the score alone):

    c_t = sigmoid(-(Delta r_t - m) / s)      the step cost CDT-V reads (m, s: Delta r's mean and std over the dataset)
    z(tau) = 1 - mean_t c_t                  in (0, 1), length-invariant like the discriminator's mean logit

Generated segments carry no reward, so Delta r(s, a, r) cannot score them: `generate.keep_fraction` ranks them by
RGM's first level instead, the (s, a) classifier of D^S vs D (sigmoid of the mean logit over the segment).
"""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
import torch

from dspo.core.artifacts import load_checkpoint, save_checkpoint
from dspo.core.config import seed_everything
from dspo.core.errors import DataError
from dspo.data.episodes import episodes_of
from dspo.data.schemas import StepData
from dspo.learners.baselines.cdt_v import corrections, estimated_costs, normalized_inputs
from dspo.learners.baselines.rgm import RGM, RGMConfig, RewardCorrection
from dspo.learners.contract import FunctionLearner, fit
from dspo.learners.nets import mlp
from dspo.learners.normalizers import BoundsNormalizer, GaussianNormalizer
from dspo.learners.transitions import build_offline_data, require_expert_data

SCORER_KIND = "rgm_scorer"


class RGMScorer:
    """z for episodes from the correction Delta r(s, a, r); for generated (s, a) segments from the classifier."""

    name = "RGM correction"

    def __init__(self, correction: RewardCorrection, classifier: torch.nn.Module, obs_norm: GaussianNormalizer,
                 bounds: BoundsNormalizer, delta_mean: float, delta_std: float, rgm_config: dict):
        self.correction, self.classifier = correction.cpu().eval(), classifier.cpu().eval()
        self.obs_norm, self.bounds = obs_norm, bounds
        self.delta_mean, self.delta_std = float(delta_mean), float(delta_std)
        self.rgm_config = dict(rgm_config)

    @property
    def obs_dim(self) -> int:
        return len(self.obs_norm.mean)

    @property
    def act_dim(self) -> int:
        return len(self.bounds.low)

    def _check(self, obs_dim: int, act_dim: int) -> None:
        if (obs_dim, act_dim) != (self.obs_dim, self.act_dim):
            raise DataError(f"shape mismatch: the data have obs/action sizes {obs_dim}/{act_dim}, the RGM scorer was "
                            f"trained on {self.obs_dim}/{self.act_dim}")

    def step_costs(self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            delta = corrections(self.correction, self.obs_norm, self.bounds, obs, action, reward)
        return estimated_costs(delta, self.delta_mean, self.delta_std)

    def score_episodes(self, data: StepData) -> pd.DataFrame:
        """(episode_id, return, z) with z = 1 - the episode's mean estimated step cost."""
        self._check(data.obs_dim, data.act_dim)
        cost = self.step_costs(data.obs, data.action, data.reward).astype(np.float64)
        ids = episodes_of(data.episode_id, data.step).ids
        mean_cost = pd.Series(cost).groupby(data.episode_id).mean().reindex(ids).to_numpy()
        return pd.DataFrame({"episode_id": ids, "return": data.episode_returns().reindex(ids).to_numpy(),
                             "z": 1.0 - mean_cost})

    def score_segments(self, obs: np.ndarray, action: np.ndarray) -> np.ndarray:
        """z of [n, H, dim] generated segments: sigmoid of the D^S-vs-D classifier's mean logit (no reward needed)."""
        n, horizon = obs.shape[:2]
        self._check(obs.shape[-1], action.shape[-1])
        flat_obs, flat_act = obs.reshape(n * horizon, -1), action.reshape(n * horizon, -1)
        x = torch.cat(normalized_inputs(self.obs_norm, self.bounds, flat_obs, flat_act), -1)
        with torch.no_grad():
            logits = self.classifier(x).squeeze(-1).reshape(n, horizon).mean(1).double().numpy()
        return 1.0 / (1.0 + np.exp(-logits))

    def save(self, path: str | os.PathLike, task: str, extra: dict | None = None) -> None:
        save_checkpoint({"kind": SCORER_KIND, "task": task, "obs_dim": self.obs_dim, "act_dim": self.act_dim,
                         "rgm_config": self.rgm_config, "delta_mean": self.delta_mean, "delta_std": self.delta_std,
                         "correction": self.correction.checkpoint(task, self.obs_norm, self.bounds, self.obs_dim,
                                                                  self.act_dim),
                         "classifier": {k: v.detach().cpu() for k, v in self.classifier.state_dict().items()},
                         **(extra or {})}, path)

    @classmethod
    def from_checkpoint(cls, ckpt: dict) -> "RGMScorer":
        correction = RewardCorrection.from_checkpoint(ckpt["correction"])
        cfg = ckpt["rgm_config"]
        classifier = mlp(ckpt["obs_dim"] + ckpt["act_dim"], list(cfg["hidden"]), 1)
        classifier.load_state_dict(ckpt["classifier"])
        return cls(correction, classifier, GaussianNormalizer.from_state_dict(ckpt["correction"]["obs_norm"]),
                   BoundsNormalizer.from_state_dict(ckpt["correction"]["act_bounds"]), ckpt["delta_mean"],
                   ckpt["delta_std"], cfg)


def load_rgm_scorer(path: str | os.PathLike, *, task: str | None = None, obs_dim: int | None = None,
                    act_dim: int | None = None) -> tuple[RGMScorer, dict]:
    ckpt = load_checkpoint(path, SCORER_KIND, task=task, obs_dim=obs_dim, act_dim=act_dim,
                           producer="train_discriminator")
    return RGMScorer.from_checkpoint(ckpt), ckpt


def train_rgm_scorer(data: StepData, act_low: np.ndarray, act_high: np.ndarray, cfg: RGMConfig,
                     device: torch.device | str = "cpu", seed: int = 0) -> tuple[RGMScorer, pd.DataFrame]:
    """RGM's classifier and bi-level correction on the learner table (its policy head is trained and discarded).

    The curve: the classifier phase (`loss_d`, the D^S-vs-D loss the discriminator's plot shows), then the bi-level
    phase (steps continue after the classifier's).
    """
    offline = build_offline_data(data, act_low, act_high, device)
    require_expert_data(offline, "the RGM scorer")
    seed_everything(seed)
    reward = offline.reward
    agent = RGM(offline, cfg, device, float(reward.mean()), float(reward.std().clamp_min(1e-6)))
    classifier_curve = fit(FunctionLearner(agent.classifier_update, agent.classifier_batch), cfg.disc_steps,
                           cfg.log_every, "rgm scorer: classifier").rename(columns={"classifier_loss": "loss_d"})
    curve = fit(agent, cfg.steps, cfg.log_every, "rgm scorer: correction")
    curve["step"] += cfg.disc_steps
    correction = agent.correction.cpu().eval()
    with torch.no_grad():  # standardized over every row of the table, as analysis_rgm_costs does
        delta = corrections(correction, offline.obs_norm, offline.act_bounds, data.obs, data.action, data.reward)
    scorer = RGMScorer(correction, agent.classifier, offline.obs_norm, offline.act_bounds, float(delta.mean()),
                       max(float(delta.std()), 1e-6), cfg.model_dump())
    return scorer, pd.concat([classifier_curve.assign(phase="classifier"), curve.assign(phase="correction")],
                             ignore_index=True)

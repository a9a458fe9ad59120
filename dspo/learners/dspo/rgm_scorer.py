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
from dataclasses import replace

import numpy as np
import pandas as pd
import torch

from dspo.core.artifacts import save_checkpoint
from dspo.core.config import seed_everything
from dspo.core.errors import DataError, ParamError
from dspo.data.episodes import episodes_of
from dspo.data.schemas import SAFE_DEMO, UNLABELED, StepData
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

    def checkpoint(self, task: str, extra: dict | None = None) -> dict:
        return {"kind": SCORER_KIND, "task": task, "obs_dim": self.obs_dim, "act_dim": self.act_dim,
                "rgm_config": self.rgm_config, "delta_mean": self.delta_mean, "delta_std": self.delta_std,
                "correction": self.correction.checkpoint(task, self.obs_norm, self.bounds, self.obs_dim, self.act_dim),
                "classifier": {k: v.detach().cpu() for k, v in self.classifier.state_dict().items()},
                **(extra or {})}

    def save(self, path: str | os.PathLike, task: str, extra: dict | None = None) -> None:
        save_checkpoint(self.checkpoint(task, extra), path)

    @classmethod
    def from_checkpoint(cls, ckpt: dict) -> "RGMScorer":
        correction = RewardCorrection.from_checkpoint(ckpt["correction"])
        cfg = ckpt["rgm_config"]
        classifier = mlp(ckpt["obs_dim"] + ckpt["act_dim"], list(cfg["hidden"]), 1)
        classifier.load_state_dict(ckpt["classifier"])
        return cls(correction, classifier, GaussianNormalizer.from_state_dict(ckpt["correction"]["obs_norm"]),
                   BoundsNormalizer.from_state_dict(ckpt["correction"]["act_bounds"]), ckpt["delta_mean"],
                   ckpt["delta_std"], cfg)


def scorer_rgm_config(disc_cfg, params: dict, source: str | os.PathLike = "params.yaml") -> RGMConfig:
    """The scorer's RGM settings: the RGM baseline's `rgm.*` with `disc.rgm_settings` on top.

    Why a layer of its own: the chain was tuned with the scorer at given RGM settings; re-tuning the RGM *baseline* (for
    its policy) must not silently retrain DSPO's scorer. `{}` keeps them the same.
    """
    base = RGMConfig.from_params(params, source=source)  # errors name rgm.<key>
    if not disc_cfg.rgm_settings:
        return base
    return RGMConfig.from_section({**base.model_dump(), **disc_cfg.rgm_settings}, "disc.rgm_settings", source)


def train_rgm_scorer(data: StepData, act_low: np.ndarray, act_high: np.ndarray, cfg: RGMConfig,
                     device: torch.device | str = "cpu", seed: int = 0, label: str = "rgm scorer"
                     ) -> tuple[RGMScorer, pd.DataFrame]:
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
                           cfg.log_every, f"{label}: classifier").rename(columns={"classifier_loss": "loss_d"})
    curve = fit(agent, cfg.steps, cfg.log_every, f"{label}: correction")
    curve["step"] += cfg.disc_steps
    correction = agent.correction.cpu().eval()
    with torch.no_grad():  # standardized over every row of the table, as analysis_rgm_costs does
        delta = corrections(correction, offline.obs_norm, offline.act_bounds, data.obs, data.action, data.reward)
    scorer = RGMScorer(correction, agent.classifier, offline.obs_norm, offline.act_bounds, float(delta.mean()),
                       max(float(delta.std()), 1e-6), cfg.model_dump())
    return scorer, pd.concat([classifier_curve.assign(phase="classifier"), curve.assign(phase="correction")],
                             ignore_index=True)


# ----------------------------------------------------------------------------------------------
# k-fold demo cross-fitting (`disc.demo_folds`)

CROSSFIT_KIND = "rgm_scorer_crossfit"


def assign_demo_folds(data: StepData, folds: int, seed: int) -> dict[int, int]:
    """{demo episode id: fold}: the demos in a seeded random order, split into `folds` near-equal parts."""
    demo_ids = np.unique(data.episode_id[data.split == SAFE_DEMO])
    if folds > len(demo_ids):
        raise ParamError(f"disc.demo_folds={folds} exceeds the {len(demo_ids)} safe demos of {data.task}; "
                         f"use at most {len(demo_ids)}")
    order = np.random.default_rng(seed).permutation(demo_ids)
    return {int(e): fold for fold, part in enumerate(np.array_split(order, folds)) for e in part}


class CrossFitScorer:
    """k RGM scorers; member f was trained with demo fold f moved into D^U.

    Why: a scorer fitted to the demos scores them at the top of its range (BallCircle: every demo z in 0.720-0.722, the
    z's ceiling), so the paper's rule -- labeled safe iff z >= the smallest demo z -- calls only the episodes that look
    like training demos safe (recall 0.23-0.28 there). Here every demo's z comes from the member that saw it as
    unlabeled data, i.e. it is scored exactly as a safe episode of D^U would be, and the same rule reads those honest
    scores. A D^U episode's z is the members' mean; a generated segment's too.
    """

    def __init__(self, members: list[RGMScorer], demo_fold: dict[int, int]):
        self.members, self.demo_fold = list(members), {int(k): int(v) for k, v in demo_fold.items()}
        self.name = f"RGM correction ({len(self.members)}-fold demo cross-fit)"

    def score_episodes(self, data: StepData) -> pd.DataFrame:
        frames = [m.score_episodes(data) for m in self.members]
        z = np.stack([f["z"].to_numpy() for f in frames])  # [k, episodes]
        out = frames[0].assign(z=z.mean(0))
        fold = out["episode_id"].map(self.demo_fold)  # NaN for episodes that are not demos of the training data
        held = np.flatnonzero(fold.notna().to_numpy())
        out.loc[out.index[held], "z"] = z[fold.iloc[held].astype(int).to_numpy(), held]
        return out

    def score_segments(self, obs: np.ndarray, action: np.ndarray) -> np.ndarray:
        return np.mean([m.score_segments(obs, action) for m in self.members], axis=0)

    def save(self, path: str | os.PathLike, task: str, extra: dict | None = None) -> None:
        first = self.members[0]
        ids = sorted(self.demo_fold)
        save_checkpoint({"kind": CROSSFIT_KIND, "task": task, "obs_dim": first.obs_dim, "act_dim": first.act_dim,
                         "members": [m.checkpoint(task) for m in self.members],
                         "demo_ids": ids, "demo_folds": [self.demo_fold[i] for i in ids], **(extra or {})}, path)

    @classmethod
    def from_checkpoint(cls, ckpt: dict) -> "CrossFitScorer":
        return cls([RGMScorer.from_checkpoint(m) for m in ckpt["members"]],
                   dict(zip(ckpt["demo_ids"], ckpt["demo_folds"])))


def train_crossfit_rgm_scorer(data: StepData, act_low: np.ndarray, act_high: np.ndarray, cfg: RGMConfig, folds: int,
                              device: torch.device | str = "cpu", seed: int = 0) -> tuple[CrossFitScorer, pd.DataFrame]:
    """`folds` RGM scorers, member f with fold f's demos relabeled unlabeled (same settings, same seed)."""
    fold_of = assign_demo_folds(data, folds, seed)
    members, curves = [], []
    for fold in range(folds):
        held = np.isin(data.episode_id, [e for e, f in fold_of.items() if f == fold])
        member, curve = train_rgm_scorer(replace(data, split=np.where(held, UNLABELED, data.split)), act_low, act_high,
                                         cfg, device, seed, label=f"rgm scorer fold {fold + 1}/{folds}")
        members.append(member)
        curves.append(curve.assign(fold=fold))
    return CrossFitScorer(members, fold_of), pd.concat(curves, ignore_index=True)

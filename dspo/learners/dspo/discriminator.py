"""Trajectory discriminator D_phi(tau) = z_tau with return-agnostic learning (paper §3.1, App. D.1).

Loss on windows of episodes (balanced batches: half D^S windows, half D^U windows):
    L_D = -E_{D^S} log D(tau) - E_{D^U} log(1 - D(tau))              (paper Eq. 1)
        + mi_weight * I_vCLUB(z; r)                                    (Eq. 4, r = episode return
                                                                        binned, from reward only;
                                                                        over `vclub_mixture`, below)
        + grad_penalty * E ||d logit / d input||^2                    (Table 2 "w/o RA + gp")
alternating a theta step of q_theta(r_bin | z) with a phi step of the discriminator
(see dspo.learners.dspo.vclub). The learner never sees cost: returns come from `StepData.reward`.

`vclub_mixture` sets the distribution of the vCLUB term and q_theta's fit: `batch` (default, chosen on
the tuning block) the unweighted 50/50 batch, where the demos weigh n_U/n_S times their share (~40x
on BallCircle); `data` importance-weights the batch back to the data's own D^S : D^U mixture.

Model selection without an oracle (a first prototype's transformer swung by ±0.1 AUROC between
checkpoints, and training loss says nothing about safety): `holdout_demos` safe demos
are kept out of training; every `eval_every` steps their scores are ranked among the D^U
episodes' scores and the state with the best mean percentile is kept.

Windows are gathered from one flat, normalized [n_steps, obs+act] tensor by episode offsets
(an index [B, L] built with tensor ops): no per-sample Python loop, and no padded
[n_episodes, max_len, dim] copy of a 1000 x 1000-step dataset.
"""
from __future__ import annotations

import contextlib
import os
from typing import Annotated, Any, Callable, ClassVar, Literal

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from pydantic import Field, StrictInt, model_validator

from dspo.core.artifacts import load_checkpoint, save_checkpoint
from dspo.core.config import Float, NonNegFloat, NonNegInt, PosFloat, PosInt, Section, Widths, seed_everything
from dspo.core.errors import DataError, ParamError
from dspo.data.episodes import episodes_of, window_index
from dspo.data.schemas import SAFE_DEMO, UNLABELED, StepData
from dspo.learners.contract import fit
from dspo.learners.dspo.safety_transformer import build_discriminator
from dspo.learners.dspo.vclub import ReturnBinClassifier, return_bins, theta_step, vclub_penalty
from dspo.learners.normalizers import GaussianNormalizer

CHECKPOINT_KIND = "discriminator"
SELECTION_MAX_UNLABELED = 256  # D^U episodes (a fixed random subset) the held-out demos are ranked among


class DiscConfig(Section):
    """params.yaml `disc`: the safety discriminator and its return-agnostic term."""

    section: ClassVar[str] = "disc"
    scorer: Literal["discriminator", "rgm"]  # what computes z: this module, or RGM's correction (rgm_scorer.py)
    backbone: Literal["transformer", "mlp"]
    context_len: PosInt
    d_model: PosInt
    n_layers: PosInt
    n_heads: PosInt
    dropout: Annotated[Float, Field(ge=0, lt=1)]
    pref_dim: PosInt
    mlp_hidden: Widths
    steps: PosInt
    batch_size: PosInt  # windows per class per batch
    lr: PosFloat
    weight_decay: NonNegFloat
    mi_weight: NonNegFloat
    vclub_mixture: Literal["data", "batch"]  # distribution the vCLUB term is taken over (module docstring)
    return_bins: Annotated[StrictInt, Field(ge=2)]
    q_lr: PosFloat
    q_steps_per_step: PosInt
    grad_penalty: NonNegFloat
    holdout_demos: NonNegInt
    eval_every: PosInt
    log_every: PosInt
    class_prior: Annotated[Float, Field(gt=0, lt=1)] | None  # PU class prior; None = the paper's plain loss
    demo_folds: PosInt = 1  # scorer rgm: 1 = one scorer on every demo (the paper) | k >= 2: k-fold demo cross-fitting
    rgm_settings: dict[str, Any] = {}  # scorer rgm: its RGM settings on top of the baseline's `rgm.*` ({}: the same)

    def to_dict(self) -> dict:
        """The architecture and training settings saved in the checkpoint (the learner seed is saved beside them).

        Without `scorer`, `demo_folds` and `rgm_settings` (the RGM scorer's): the checkpoint's kind already says which scorer it is, and
        a discriminator checkpoint stays byte-identical to one written before the knobs existed (so DVC does not retrain
        what follows it).
        """
        return self.model_dump(exclude={"scorer", "demo_folds", "rgm_settings"})

    @model_validator(mode="after")
    def _heads_divide_width(self) -> "DiscConfig":
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        if self.demo_folds > 1 and self.scorer != "rgm":
            raise ValueError(f"demo_folds={self.demo_folds} applies to scorer rgm only (the discriminator holds demos "
                             f"out for model selection with holdout_demos); set demo_folds: 1")
        return self


# ----------------------------------------------------------------------------------------------
# Episodes as one flat tensor, windows gathered by index


class EpisodeWindows:
    """All episodes of a StepData, normalized, flat [n_steps, obs+act] with per-episode offsets."""

    def __init__(self, data: StepData, normalizer: GaussianNormalizer, device: torch.device | str = "cpu"):
        episodes = episodes_of(data.episode_id, data.step)
        ids, first, lengths = episodes.ids, episodes.first, episodes.lengths
        feats = normalizer.normalize(np.concatenate([data.obs, data.action], axis=1)[episodes.order])
        self.obs_dim = data.obs_dim
        self.episode_ids = ids
        self.split = data.split[episodes.order][first]
        self.returns = data.episode_returns().reindex(ids).to_numpy()
        self.feats = torch.as_tensor(feats, dtype=torch.float32, device=device)
        self.offsets = torch.as_tensor(first, dtype=torch.long, device=device)
        self.lengths = torch.as_tensor(lengths, dtype=torch.long, device=device)

    def __len__(self) -> int:
        return len(self.episode_ids)

    def random_starts(self, episodes: torch.Tensor, context_len: int, generator: torch.Generator) -> torch.Tensor:
        """A uniform window start per episode in [0, max(len - L, 0)]."""
        room = (self.lengths[episodes] - context_len).clamp_min(0) + 1
        u = torch.rand(len(episodes), generator=generator).to(room.device)
        return (u * room).long().clamp_max(room - 1)

    def covering(self, context_len: int, episodes: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Windows covering each episode: starts 0, L, 2L, ..., the last aligned to the episode's end."""
        episodes = torch.as_tensor(np.arange(len(self)) if episodes is None else episodes, dtype=torch.long,
                                   device=self.lengths.device)
        lengths = self.lengths[episodes]
        n_win = (lengths + context_len - 1) // context_len
        ep = torch.repeat_interleave(episodes, n_win)
        k = torch.arange(len(ep), device=ep.device) - torch.repeat_interleave(torch.cumsum(n_win, 0) - n_win, n_win)
        starts = torch.minimum(k * context_len, (self.lengths[ep] - context_len).clamp_min(0))
        return ep, starts

    def gather(self, episodes: torch.Tensor, starts: torch.Tensor, context_len: int):
        """(obs [B, L, obs_dim], act [B, L, act_dim], timesteps [B, L], mask [B, L]); padding is zero."""
        length = self.lengths[episodes]
        pos, mask = window_index(starts, context_len, length)
        x = self.feats[self.offsets[episodes][:, None] + torch.minimum(pos, length[:, None] - 1)] * mask[..., None]
        return x[..., :self.obs_dim], x[..., self.obs_dim:], pos, mask


@torch.no_grad()
def window_logits(model: nn.Module, windows: EpisodeWindows, context_len: int, episodes: np.ndarray | None = None,
                  batch_size: int = 256) -> np.ndarray:
    """Per-episode score: mean of the covering windows' logits (module docstring of safety_transformer)."""
    was_training = model.training
    model.eval()
    ep, starts = windows.covering(context_len, episodes)
    logits = torch.cat([model(*windows.gather(ep[i:i + batch_size], starts[i:i + batch_size], context_len))
                        for i in range(0, len(ep), batch_size)])
    model.train(was_training)
    sums = torch.zeros(len(windows), device=logits.device).index_add_(0, ep, logits)
    counts = torch.bincount(ep, minlength=len(windows)).clamp_min(1)
    scores = (sums / counts).cpu().numpy()
    return scores if episodes is None else scores[episodes]


# ----------------------------------------------------------------------------------------------
# Losses


def discriminator_loss(logits: torch.Tensor, labels: torch.Tensor, class_prior: float | None = None) -> torch.Tensor:
    """Paper Eq. 1 on logits (-log sigma(x) = softplus(-x)), or the non-negative PU risk with a class prior.

    nnPU (Kiryo et al., 2017), pi = class_prior = share of safe episodes in D^U:
    pi E_S[-log D] + max(0, E_U[-log(1-D)] - pi E_S[-log(1-D)]).
    """
    pos, unl = logits[labels > 0.5], logits[labels < 0.5]
    if class_prior is None:
        return nn.functional.softplus(-pos).mean() + nn.functional.softplus(unl).mean()
    negative_risk = nn.functional.softplus(unl).mean() - class_prior * nn.functional.softplus(pos).mean()
    return class_prior * nn.functional.softplus(-pos).mean() + negative_risk.clamp_min(0.0)


def gradient_penalty(logits: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """E_batch ||d logit / d inputs||^2 (R1-style, on the real windows), differentiable for the phi step."""
    grads = torch.autograd.grad(logits.sum(), inputs, create_graph=True)
    return sum(g.pow(2).flatten(1).sum(1) for g in grads).mean()


def holdout_percentile(holdout_scores: np.ndarray, unlabeled_scores: np.ndarray) -> float:
    """Mean over held-out demos of the fraction of D^U episodes they outscore (ties count half)."""
    below = (unlabeled_scores[None, :] < holdout_scores[:, None]).mean(1)
    ties = (unlabeled_scores[None, :] == holdout_scores[:, None]).mean(1)
    return float(np.mean(below + 0.5 * ties))


# ----------------------------------------------------------------------------------------------
# Training


def check_discriminator_data(data: StepData, cfg: DiscConfig, name: str = "disc") -> None:
    """Refuse a dataset the discriminator cannot be trained on, saying what is missing."""
    if data.obs.shape[0] != data.action.shape[0] or data.obs.shape[0] != len(data.episode_id):
        raise DataError(f"shape mismatch: {data.obs.shape[0]} observations, {data.action.shape[0]} actions, "
                         f"{len(data.episode_id)} episode ids")
    ids, first = np.unique(data.episode_id, return_index=True)
    split = data.split[first]
    n_safe, n_unl = int(np.sum(split == SAFE_DEMO)), int(np.sum(split == UNLABELED))
    if n_safe < 2:
        raise DataError(f"dataset has {n_safe} safe demo episode(s); the discriminator needs at least 2")
    if n_unl < 1:
        raise DataError("dataset has no unlabeled episodes; the discriminator needs D^U to contrast with D^S")
    if cfg.holdout_demos >= n_safe:
        raise ParamError(f"{name}.holdout_demos={cfg.holdout_demos} leaves no safe demo to train on "
                         f"(the dataset has {n_safe}); use at most {n_safe - 1}")
    longest = int(np.bincount(np.unique(data.episode_id, return_inverse=True)[1]).max())
    if cfg.context_len > longest:
        raise ParamError(f"{name}.context_len={cfg.context_len} is larger than the longest episode "
                         f"({longest} steps); use at most {longest}")


class DiscriminatorLearner:
    """D_phi and q_theta on balanced window batches; keeps the state whose held-out demos rank highest."""

    def __init__(self, data: StepData, cfg: DiscConfig, device: torch.device | str = "cpu", seed: int = 0):
        check_discriminator_data(data, cfg)
        seed_everything(seed)
        self.cfg, self.device = cfg, torch.device(device)
        rng = np.random.default_rng(seed)
        self.gen = torch.Generator().manual_seed(seed)
        self.normalizer = GaussianNormalizer.fit(np.concatenate([data.obs, data.action], axis=1))
        self.windows = windows = EpisodeWindows(data, self.normalizer, self.device)

        demos = np.flatnonzero(windows.split == SAFE_DEMO)
        self.holdout = np.sort(rng.choice(demos, cfg.holdout_demos, replace=False))
        self.train_demos = np.setdiff1d(demos, self.holdout)
        self.unlabeled = np.flatnonzero(windows.split == UNLABELED)
        self.selection_unl = np.sort(rng.choice(self.unlabeled, min(len(self.unlabeled), SELECTION_MAX_UNLABELED),
                                                replace=False))
        train_eps = np.concatenate([self.train_demos, self.unlabeled])
        bins = torch.zeros(len(windows), dtype=torch.long)
        bins[train_eps] = return_bins(windows.returns[train_eps], cfg.return_bins)  # binned among training episodes
        self.bins = bins.to(self.device)
        self.demo_t, self.unl_t = (torch.as_tensor(a, device=self.device) for a in (self.train_demos, self.unlabeled))
        self.labels = torch.cat([torch.ones(cfg.batch_size), torch.zeros(cfg.batch_size)]).to(self.device)
        self.mixture_weights = self._mixture_weights() if cfg.vclub_mixture == "data" else None

        self.model = build_discriminator(cfg, data.obs_dim, data.act_dim).to(self.device)
        self.q = ReturnBinClassifier(cfg.return_bins).to(self.device)
        self.opt_phi = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.opt_theta = torch.optim.Adam(self.q.parameters(), lr=cfg.q_lr)
        self.best = {"step": 0, "holdout_rank": -np.inf, "state": None}

    def _mixture_weights(self) -> torch.Tensor:
        """Per-sample weights (sum 1) taking the balanced batch to the training episodes' own D^S : D^U mix."""
        share = len(self.train_demos) / (len(self.train_demos) + len(self.unlabeled))
        b = self.cfg.batch_size
        return torch.cat([torch.full((b,), share / b), torch.full((b,), (1.0 - share) / b)]).to(self.device)

    def _sample(self, pool: torch.Tensor) -> torch.Tensor:
        return pool[torch.randint(len(pool), (self.cfg.batch_size,), generator=self.gen).to(self.device)]

    def batch(self, step: int):
        """Episodes (half D^S, half D^U) and one random window of each: (episodes, (obs, act, timesteps, mask))."""
        ep = torch.cat([self._sample(self.demo_t), self._sample(self.unl_t)])
        starts = self.windows.random_starts(ep, self.cfg.context_len, self.gen)
        return ep, self.windows.gather(ep, starts, self.cfg.context_len)

    def update(self, batch, step: int) -> dict[str, float]:
        cfg = self.cfg
        ep, (obs, act, timesteps, mask) = batch
        self.model.train()
        if cfg.grad_penalty > 0:
            obs, act = obs.detach().requires_grad_(True), act.detach().requires_grad_(True)
        with sdpa_kernel(SDPBackend.MATH) if cfg.grad_penalty > 0 else contextlib.nullcontext():
            logits = self.model(obs, act, timesteps, mask)  # gp needs double backward: the math kernel has it
        z = torch.sigmoid(logits)

        for _ in range(cfg.q_steps_per_step):  # theta step(s): z detached inside
            _, q_acc = theta_step(self.q, self.opt_theta, z, self.bins[ep], self.mixture_weights)
        loss_d = discriminator_loss(logits, self.labels, cfg.class_prior)
        with torch.set_grad_enabled(cfg.mi_weight > 0):
            vclub = vclub_penalty(self.q, z, self.bins[ep], self.mixture_weights)  # logged even when mi_weight = 0 (the ablation's I(z; r))
        loss = loss_d + cfg.mi_weight * vclub if cfg.mi_weight > 0 else loss_d
        if cfg.grad_penalty > 0:
            loss = loss + cfg.grad_penalty * gradient_penalty(logits, (obs, act))
        self.opt_phi.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_phi.step()
        return {"loss_d": loss_d.item(), "vclub": vclub.item(), "q_acc": q_acc}

    def evaluate(self, step: int, due: bool) -> dict[str, float]:
        """Model selection without the oracle: rank of the held-out demos among D^U, keep the best state."""
        if not due or len(self.holdout) == 0:
            return {"holdout_rank": np.nan}
        scores = window_logits(self.model, self.windows, self.cfg.context_len,
                               np.concatenate([self.holdout, self.selection_unl]))
        rank = holdout_percentile(scores[:len(self.holdout)], scores[len(self.holdout):])
        if rank >= self.best["holdout_rank"]:  # ties: the later, longer-trained state
            self.best = {"step": step, "holdout_rank": rank,
                         "state": {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}}
        return {"holdout_rank": rank}

    def selection(self) -> dict:
        ids, best = self.windows.episode_ids, self.best
        return {
            "selected_step": best["step"] if best["state"] is not None else self.cfg.steps,
            "selected_holdout_rank": None if best["state"] is None else float(best["holdout_rank"]),
            "holdout_episode_ids": ids[self.holdout].tolist(),
            "train_demo_episode_ids": ids[self.train_demos].tolist(),
            "n_unlabeled": int(len(self.unlabeled)),
            "n_selection_unlabeled": int(len(self.selection_unl)) if self.cfg.holdout_demos > 0 else 0,
        }


Probe = Callable[["DiscriminatorLearner", int], dict]


def train_discriminator(data: StepData, cfg: DiscConfig, device: torch.device | str = "cpu", seed: int = 0,
                        desc: str = "discriminator", probe: Probe | None = None
                        ) -> tuple[nn.Module, GaussianNormalizer, pd.DataFrame, dict]:
    """Train D_phi (and q_theta) on windows; return (model on CPU, normalizer, history, selection info).

    `probe(learner, step)`, when given, adds columns to the history every `eval_every` steps, after the
    selection row and before the selected state is restored: the diagnostics (oracle AUROC along
    training, Fig. 4's held-out curves) watch the same loop the stage runs instead of a copy of it.
    """
    learner = DiscriminatorLearner(data, cfg, device, seed)

    def evaluate(step: int, due: bool) -> dict:
        row = learner.evaluate(step, due)
        return {**row, **probe(learner, step)} if due and probe is not None else row

    watched = cfg.holdout_demos > 0 or probe is not None
    history = fit(learner, cfg.steps, cfg.log_every, desc, eval_every=cfg.eval_every if watched else None,
                  evaluate=evaluate)
    if learner.best["state"] is not None:
        learner.model.load_state_dict(learner.best["state"])
    return learner.model.cpu().eval(), learner.normalizer, history, learner.selection()


# ----------------------------------------------------------------------------------------------
# Scoring and checkpoints


def score_episodes(model: nn.Module, normalizer: GaussianNormalizer, data: StepData, context_len: int,
                   device: torch.device | str = "cpu", batch_size: int = 256) -> pd.DataFrame:
    """z for every episode: sigmoid of the mean logit of its covering windows -> (episode_id, return, z)."""
    if data.obs_dim != model.obs_dim or data.act_dim != model.act_dim:
        raise DataError(f"shape mismatch: the dataset has obs/action sizes {data.obs_dim}/{data.act_dim}, "
                         f"the discriminator was built for {model.obs_dim}/{model.act_dim}")
    if len(normalizer.mean) != data.obs_dim + data.act_dim:
        raise DataError(f"shape mismatch: the normalizer has {len(normalizer.mean)} features, expected "
                         f"obs+action = {data.obs_dim + data.act_dim}")
    windows = EpisodeWindows(data, normalizer, device)
    logits = window_logits(model.to(device), windows, context_len, batch_size=batch_size)
    return pd.DataFrame({"episode_id": windows.episode_ids, "return": windows.returns,
                         "z": 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))})


def score_segments(model: nn.Module, normalizer: GaussianNormalizer, obs: np.ndarray, action: np.ndarray,
                   context_len: int, device: torch.device | str = "cpu") -> np.ndarray:
    """z of each generated segment ([n, H, dim] arrays), scored like an episode (covering windows, mean logit)."""
    n, horizon = obs.shape[:2]
    segments = StepData(task="generated", episode_id=np.repeat(np.arange(n), horizon),
                        step=np.tile(np.arange(horizon), n), obs=obs.reshape(n * horizon, -1),
                        action=action.reshape(n * horizon, -1), reward=np.zeros(n * horizon),
                        terminated=np.zeros(n * horizon, bool), truncated=np.zeros(n * horizon, bool),
                        split=np.full(n * horizon, UNLABELED))
    return score_episodes(model, normalizer, segments, context_len, device)["z"].to_numpy()


def save_discriminator_checkpoint(path: str | os.PathLike, model: nn.Module, normalizer: GaussianNormalizer,
                                  cfg: DiscConfig, task: str, extra: dict | None = None) -> None:
    save_checkpoint({
        "kind": CHECKPOINT_KIND,
        "task": task,
        "obs_dim": model.obs_dim,
        "act_dim": model.act_dim,
        "config": cfg.to_dict(),
        "normalizer": normalizer.state_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        **(extra or {}),
    }, path)


def load_discriminator_checkpoint(path: str | os.PathLike, *, task: str | None = None, obs_dim: int | None = None,
                                  act_dim: int | None = None) -> tuple[nn.Module, GaussianNormalizer, DiscConfig, dict]:
    """Rebuild (model in eval mode, normalizer, config, raw checkpoint); refuse another task or other sizes."""
    ckpt = load_checkpoint(path, CHECKPOINT_KIND, task=task, obs_dim=obs_dim, act_dim=act_dim,
                           producer="train_discriminator")
    return (*discriminator_from_checkpoint(ckpt, source=path), ckpt)


def discriminator_from_checkpoint(ckpt: dict, source: str | os.PathLike = "checkpoint"
                                  ) -> tuple[nn.Module, GaussianNormalizer, DiscConfig]:
    """(model in eval mode, normalizer, config) from a checkpoint already read and checked (one read per stage)."""
    cfg = DiscConfig.from_section({"scorer": "discriminator", **ckpt["config"]}, "disc", source=source)
    model = build_discriminator(cfg, ckpt["obs_dim"], ckpt["act_dim"])
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), GaussianNormalizer.from_state_dict(ckpt["normalizer"]), cfg

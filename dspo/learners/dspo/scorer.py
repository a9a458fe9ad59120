"""One interface for DSPO's safety score z, whichever model computes it (`disc.scorer`).

The stages that use z (label_safety scores episodes, generate's `keep_fraction` scores generated segments,
analysis_labeling reports it) read `models/<task>/discriminator/seed<k>/model.pt` through `load_scorer`, which
dispatches on the checkpoint's kind: the discriminator (the paper), RGM's reward correction, or k of those
cross-fitted over the demos (`disc.demo_folds`).
"""
from __future__ import annotations

import os
from typing import Protocol

import numpy as np
import pandas as pd
import torch

from dspo.core.artifacts import load_checkpoint
from dspo.data.schemas import StepData
from dspo.learners.dspo import discriminator as disc
from dspo.learners.dspo.rgm_scorer import CROSSFIT_KIND, SCORER_KIND, CrossFitScorer, RGMScorer


class SafetyScorer(Protocol):
    name: str

    def score_episodes(self, data: StepData) -> pd.DataFrame: ...  # (episode_id, return, z)

    def score_segments(self, obs: np.ndarray, action: np.ndarray) -> np.ndarray: ...  # z per [n, H, dim] segment


class DiscriminatorScorer:
    """The discriminator's z: sigmoid of the mean logit over an episode's (or segment's) covering windows."""

    def __init__(self, model: torch.nn.Module, normalizer, cfg: disc.DiscConfig, device: torch.device | str = "cpu"):
        self.model, self.normalizer, self.cfg, self.device = model, normalizer, cfg, device
        self.name = f"{cfg.backbone} discriminator"

    def score_episodes(self, data: StepData) -> pd.DataFrame:
        return disc.score_episodes(self.model, self.normalizer, data, self.cfg.context_len, self.device)

    def score_segments(self, obs: np.ndarray, action: np.ndarray) -> np.ndarray:
        return disc.score_segments(self.model, self.normalizer, obs, action, self.cfg.context_len, self.device)


def load_scorer(path: str | os.PathLike, *, task: str, obs_dim: int, act_dim: int,
                device: torch.device | str = "cpu") -> tuple[SafetyScorer, dict]:
    """The chain's scorer and its raw checkpoint; refuse another kind, task or obs/action sizes."""
    ckpt = load_checkpoint(path, (disc.CHECKPOINT_KIND, SCORER_KIND, CROSSFIT_KIND), task=task, obs_dim=obs_dim,
                           act_dim=act_dim, producer="train_discriminator")
    if ckpt["kind"] == SCORER_KIND:
        return RGMScorer.from_checkpoint(ckpt), ckpt
    if ckpt["kind"] == CROSSFIT_KIND:
        return CrossFitScorer.from_checkpoint(ckpt), ckpt
    model, normalizer, cfg = disc.discriminator_from_checkpoint(ckpt, source=path)
    return DiscriminatorScorer(model, normalizer, cfg, device), ckpt

"""The paper's Fig. 4 protocol: can the backbone tell safe from unsafe trajectories at all, given the labels?

Supervised, not PU: every episode's TRUE safety label (the oracle; this is an analysis) is known;
a stratified `fig4.train_fraction` of the episodes trains a classifier per backbone (SafetyTransformer,
MLP), the rest are held out and scored along training. The classifier is the discriminator itself
(`train_discriminator`, `disc.*` architecture and optimizer) with the truly safe training episodes
in the D^S role and the unsafe ones in the D^U role -- its balanced batches then make Eq. 1 plain
supervised BCE -- and no vCLUB term or demo hold-out (nothing to be return-agnostic about here).
Reported per backbone: held-out AUROC and accuracy (logit > 0) every `fig4.eval_every` steps.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Annotated, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from dspo.core.artifacts import atomic_path
from dspo.core.config import Float, PosInt, Section
from dspo.core.errors import DataError
from dspo.data.schemas import SAFE_DEMO, UNLABELED, StepData
from dspo.evaluation.labeling import auroc
from dspo.learners.dspo.discriminator import DiscConfig, EpisodeWindows, train_discriminator, window_logits


class Fig4Config(Section):
    """params.yaml `fig4`: the supervised backbone comparison (analysis stage analysis_fig4)."""

    section: ClassVar[str] = "fig4"
    backbones: Annotated[list[Literal["transformer", "mlp"]], Field(min_length=1)]
    train_fraction: Annotated[Float, Field(gt=0, lt=1)]  # share of each class used for training
    steps: PosInt
    eval_every: PosInt


def supervised_split(data: StepData, is_safe: pd.Series, train_fraction: float,
                     seed: int) -> tuple[StepData, StepData]:
    """(train, held-out): a stratified episode split; in train, safe episodes take the D^S role, unsafe D^U."""
    ids = np.unique(data.episode_id)
    labels = is_safe.reindex(ids)
    if labels.isna().any():
        raise DataError(f"the oracle has no safety label for {int(labels.isna().sum())} dataset episode(s)")
    rng = np.random.default_rng(seed)
    train_ids = []
    for value in (True, False):
        members = ids[labels.to_numpy() == value]
        n_train = int(round(train_fraction * len(members)))
        if n_train < 2 or len(members) - n_train < 1:
            raise DataError(f"fig4 needs >= 2 training and >= 1 held-out {'safe' if value else 'unsafe'} episodes; "
                            f"the dataset has {len(members)} (fig4.train_fraction={train_fraction})")
        train_ids.append(rng.choice(members, n_train, replace=False))
    in_train = np.isin(data.episode_id, np.concatenate(train_ids))
    safe_step = labels.reindex(data.episode_id).to_numpy().astype(bool)
    train = data.select(in_train)
    train = dataclasses.replace(train, split=np.where(safe_step[in_train], SAFE_DEMO, UNLABELED).astype(data.split.dtype))
    return train, data.select(~in_train)


def run_fig4(data: StepData, is_safe: pd.Series, disc: DiscConfig, cfg: Fig4Config, seed: int,
             device: str = "cpu") -> dict:
    """Per backbone: the held-out AUROC / accuracy curve and its final values."""
    train, held = supervised_split(data, is_safe, cfg.train_fraction, seed)
    results = {}
    for backbone in cfg.backbones:
        conf = disc.model_copy(update={"backbone": backbone, "mi_weight": 0.0, "holdout_demos": 0,
                                       "grad_penalty": 0.0, "class_prior": None, "steps": cfg.steps,
                                       "eval_every": cfg.eval_every, "log_every": cfg.eval_every})
        held_windows: dict[str, EpisodeWindows] = {}  # built once, with the learner's normalizer

        def heldout_scores(learner, step: int) -> dict:
            if not held_windows:
                held_windows["w"] = EpisodeWindows(held, learner.normalizer, learner.device)
            windows = held_windows["w"]
            labels = is_safe.reindex(windows.episode_ids).to_numpy().astype(bool)
            logits = window_logits(learner.model, windows, conf.context_len)
            return {"heldout_auroc": auroc(logits, labels), "heldout_accuracy": float(np.mean((logits > 0) == labels))}

        curve = train_discriminator(train, conf, device, seed, desc=f"fig4 {backbone}",
                                    probe=heldout_scores)[2].dropna(subset=["heldout_auroc"])
        results[backbone] = {"final_auroc": float(curve["heldout_auroc"].iloc[-1]),
                             "final_accuracy": float(curve["heldout_accuracy"].iloc[-1]),
                             "best_auroc": float(curve["heldout_auroc"].max()),
                             "curve": curve[["step", "loss_d", "heldout_auroc", "heldout_accuracy"]].to_dict("records")}
    return {"train_episodes": int(len(np.unique(train.episode_id))),
            "heldout_episodes": int(len(np.unique(held.episode_id))),
            "heldout_safe_share": float(is_safe.reindex(np.unique(held.episode_id)).mean()),
            "backbones": results}


def plot_skipped(message: str, path: str | os.PathLike) -> None:
    """The figure's place when the data could not be split: the reason, in words."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 2))
    ax.axis("off")
    ax.text(0.5, 0.5, "Fig. 4 skipped:\n" + message, ha="center", va="center", wrap=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def plot_fig4(result: dict, title: str, path: str | os.PathLike) -> None:
    """Held-out AUROC and accuracy along training, one line per backbone."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for backbone, res in result["backbones"].items():
        curve = pd.DataFrame(res["curve"])
        axes[0].plot(curve["step"], curve["heldout_auroc"], marker="o", ms=3, label=backbone)
        axes[1].plot(curve["step"], curve["heldout_accuracy"], marker="o", ms=3, label=backbone)
    for ax, name in zip(axes, ("held-out AUROC", "held-out accuracy")):
        ax.set_xlabel("training step")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)

"""Deterministic MLP behavior cloning: the learner behind BC-All, BC-Safe and DSPO's distillation.

pi(s) is trained with MSE on (state, action) pairs, actions squashed to the action bounds by
tanh (SPEC "distill_bc"). Each pair may carry a sampling weight so the distillation can set
the relative weight of D^S and the generated D^G; minibatches are drawn with replacement in
proportion to those weights, on whole tensors (no per-sample Python loop).
"""
from __future__ import annotations

from typing import ClassVar, Optional

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, field_validator

from dspo.core.config import NonNegFloat, PosFloat, PosInt, Section, Widths
from dspo.core.errors import DataError
from dspo.data.schemas import SAFE_DEMO
from dspo.learners.contract import Algorithm, BASELINE, fit
from dspo.learners.nets import DeterministicPolicy
from dspo.learners.normalizers import BoundsNormalizer, GaussianNormalizer


class BCOverrides(BaseModel):
    """Trainer settings one algorithm tunes for itself (`bc.per_algo.<algo>`); unset keys keep `bc.*`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    steps: Optional[PosInt] = None
    batch_size: Optional[PosInt] = None
    lr: Optional[PosFloat] = None
    weight_decay: Optional[NonNegFloat] = None
    hidden: Optional[Widths] = None


# the algorithms trained by this learner: BC-All, BC-Safe (train_bc) and DSPO's distillations (distill_bc)
BC_TRAINED = ("bc_all", "bc_safe", "dspo", "analysis_oracle_dspo")


class BCConfig(Section):
    """params.yaml `bc`: the BC trainer (BC-All, BC-Safe and distill_bc share it).

    `per_algo` gives each of them its own tuned settings, so every algorithm is tuned on the tuning block
    with the same budget without moving the others (a shared knob would tie BC-Safe's choice to DSPO's)."""

    section: ClassVar[str] = "bc"
    steps: PosInt
    batch_size: PosInt
    lr: PosFloat
    weight_decay: NonNegFloat
    hidden: Widths
    log_every: PosInt
    per_algo: dict[str, BCOverrides]

    @field_validator("per_algo")
    @classmethod
    def _known_algorithms(cls, value: dict) -> dict:
        unknown = sorted(set(value) - set(BC_TRAINED))
        if unknown:
            raise ValueError(f"{unknown} are not trained by BC; valid: {', '.join(BC_TRAINED)}")
        return value

    def for_algo(self, algo: str) -> "BCConfig":
        """These settings with `per_algo[algo]` on top (the trainer settings that algorithm was tuned to)."""
        own = self.per_algo.get(algo)
        if own is None:
            return self
        return self.model_copy(update=own.model_dump(exclude_none=True))


class BC:
    """MSE regression of the demonstrated action; `update` follows the learner contract."""

    def __init__(self, obs: np.ndarray, actions: np.ndarray, act_low: np.ndarray, act_high: np.ndarray,
                 cfg: BCConfig, device: torch.device, weights: np.ndarray | None = None):
        check_pairs(obs, actions, act_low, weights)
        self.cfg, self.device = cfg, device
        self.policy = DeterministicPolicy(GaussianNormalizer.fit(obs), BoundsNormalizer(act_low, act_high),
                                          cfg.hidden).to(device)
        self.obs = torch.as_tensor(obs, dtype=torch.float32, device=device)
        self.actions = torch.as_tensor(np.clip(actions, act_low, act_high), dtype=torch.float32, device=device)
        self.probs = None if weights is None else torch.as_tensor(weights, dtype=torch.float32, device=device)
        self.optim = torch.optim.AdamW(self.policy.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def batch(self, step: int) -> torch.Tensor:
        if self.probs is None:
            return torch.randint(0, len(self.obs), (self.cfg.batch_size,), device=self.device)
        return torch.multinomial(self.probs, self.cfg.batch_size, replacement=True)

    def update(self, idx: torch.Tensor, step: int) -> dict[str, float]:
        loss = torch.mean((self.policy(self.obs[idx]) - self.actions[idx]) ** 2)
        self.optim.zero_grad(set_to_none=True)
        loss.backward()
        self.optim.step()
        return {"mse": loss.item()}


def check_pairs(obs: np.ndarray, actions: np.ndarray, act_low: np.ndarray, weights: np.ndarray | None) -> None:
    """Refuse what BC cannot learn from, saying what is wrong."""
    if len(obs) == 0:
        raise DataError("behavior cloning needs at least one (state, action) pair; the selected split is empty")
    if obs.shape[0] != actions.shape[0]:
        raise DataError(f"shape mismatch: {obs.shape[0]} observations vs {actions.shape[0]} actions")
    if actions.shape[1] != len(act_low):
        raise DataError(f"shape mismatch: actions have size {actions.shape[1]}, the task's action space {len(act_low)}")
    if weights is not None and (len(weights) != len(obs) or np.any(np.asarray(weights) < 0)
                                or float(np.sum(weights)) <= 0):
        raise DataError("BC sample weights must be non-negative, not all zero, one per pair")


def train_bc(obs: np.ndarray, actions: np.ndarray, act_low: np.ndarray, act_high: np.ndarray, cfg: BCConfig,
             device: torch.device, weights: np.ndarray | None = None,
             desc: str = "bc") -> tuple[DeterministicPolicy, pd.DataFrame]:
    """Fit pi(s) -> a on the given pairs; return the policy (on CPU) and its loss curve."""
    learner = BC(obs, actions, act_low, act_high, cfg, device, weights)
    curve = fit(learner, cfg.steps, cfg.log_every, desc)
    return learner.policy.cpu().eval(), curve


# BC-All learns from D^S u D^U, BC-Safe from D^S only (split None = every split).
SPLITS = {"bc_all": None, "bc_safe": SAFE_DEMO}
ALGORITHMS = (Algorithm("bc_all", "BC-All", BASELINE, "bc", BCConfig),
              Algorithm("bc_safe", "BC-Safe", BASELINE, "bc", BCConfig))

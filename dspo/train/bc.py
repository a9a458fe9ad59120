"""Deterministic MLP behavior cloning: the trainer behind BC-All, BC-Safe and DSPO's distill_bc.

pi(s) is trained with MSE on (state, action) pairs, actions squashed to the action bounds by
tanh (SPEC "distill_bc"). Each pair carries a sampling weight so distill_bc can set the
relative weight of D^S and the generated D^G; minibatches are drawn with replacement in
proportion to those weights, on whole tensors (no per-sample Python loop).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from tqdm import trange

from dspo.config import require, require_int_list
from dspo.models.mlp import DeterministicPolicy
from dspo.normalizers import BoundsNormalizer, GaussianNormalizer


@dataclass
class BCConfig:
    steps: int
    batch_size: int
    lr: float
    weight_decay: float
    hidden: list[int]
    log_every: int

    @classmethod
    def from_params(cls, cfg: dict, name: str = "bc") -> "BCConfig":
        hidden = require_int_list(cfg, "hidden", name)
        return cls(
            steps=require(cfg, "steps", name, kind=int, minimum=1),
            batch_size=require(cfg, "batch_size", name, kind=int, minimum=1),
            lr=float(require(cfg, "lr", name, minimum=0, strict_min=True)),
            weight_decay=float(require(cfg, "weight_decay", name, minimum=0)),
            hidden=hidden,
            log_every=require(cfg, "log_every", name, kind=int, minimum=1),
        )


def train_bc(obs: np.ndarray, actions: np.ndarray, act_low: np.ndarray, act_high: np.ndarray, cfg: BCConfig,
             device: torch.device, weights: np.ndarray | None = None,
             desc: str = "bc") -> tuple[DeterministicPolicy, pd.DataFrame]:
    """Fit pi(s) -> a on the given pairs; return the policy (on CPU) and its loss curve."""
    if len(obs) == 0:
        raise ValueError("behavior cloning needs at least one (state, action) pair; the selected split is empty")
    if obs.shape[0] != actions.shape[0]:
        raise ValueError(f"shape mismatch: {obs.shape[0]} observations vs {actions.shape[0]} actions")
    if actions.shape[1] != len(act_low):
        raise ValueError(f"shape mismatch: actions have size {actions.shape[1]}, the task's action space {len(act_low)}")
    policy = DeterministicPolicy(GaussianNormalizer.fit(obs), BoundsNormalizer(act_low, act_high), cfg.hidden).to(device)
    obs_t = torch.as_tensor(obs, dtype=torch.float32, device=device)
    act_t = torch.as_tensor(np.clip(actions, act_low, act_high), dtype=torch.float32, device=device)
    probs = None
    if weights is not None:
        if len(weights) != len(obs) or np.any(np.asarray(weights) < 0) or float(np.sum(weights)) <= 0:
            raise ValueError("BC sample weights must be non-negative, not all zero, one per pair")
        probs = torch.as_tensor(weights, dtype=torch.float32, device=device)
    optim = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    history = []
    running = 0.0
    for step in trange(1, cfg.steps + 1, desc=desc, leave=False, mininterval=1.0):
        if probs is None:
            idx = torch.randint(0, len(obs_t), (cfg.batch_size,), device=device)
        else:
            idx = torch.multinomial(probs, cfg.batch_size, replacement=True)
        loss = torch.mean((policy(obs_t[idx]) - act_t[idx]) ** 2)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        running += loss.item()
        if step % cfg.log_every == 0 or step == cfg.steps:
            count = cfg.log_every if step % cfg.log_every == 0 else step % cfg.log_every
            history.append({"step": step, "mse": running / count})
            running = 0.0
    return policy.cpu().eval(), pd.DataFrame(history)


def policy_act_fn(policy: DeterministicPolicy, device: torch.device | str = "cpu"):
    """Wrap a policy as the batched numpy act function the rollouts expect."""
    policy = policy.to(device).eval()

    @torch.no_grad()
    def act(obs: np.ndarray) -> np.ndarray:
        return policy(torch.as_tensor(obs, dtype=torch.float32, device=device)).cpu().numpy()

    return act

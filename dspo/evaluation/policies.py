"""Load any trained policy checkpoint as something the rollouts can drive.

Two kinds exist: `deterministic_policy` (BC, DSPO, TD3+BC, IQL, CQL, DWBC, RGM: an MLP with its
normalizers) and `cdt_policy` (CDT-V: a decision transformer with memory, driven through the
`EpisodicPolicy` hooks of `dspo.data.rollout`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dspo.core.artifacts import load_checkpoint
from dspo.data.rollout import ActFn, EpisodicPolicy
from dspo.learners.nets import DeterministicPolicy

POLICY_KINDS = ("deterministic_policy", "cdt_policy")


def policy_act_fn(policy: DeterministicPolicy, device: torch.device | str = "cpu") -> ActFn:
    """Wrap a policy as the batched numpy act function the rollouts expect."""
    policy = policy.to(device).eval()

    @torch.no_grad()
    def act(obs: np.ndarray) -> np.ndarray:
        return policy(torch.as_tensor(obs, dtype=torch.float32, device=device)).cpu().numpy()

    return act


def load_policy(path: Path, task: str, obs_dim: int, device: torch.device | str = "cpu") -> ActFn | EpisodicPolicy:
    ckpt = load_checkpoint(path, POLICY_KINDS, task=task, obs_dim=obs_dim, producer="its training stage")
    if ckpt["kind"] == "cdt_policy":
        from dspo.learners.baselines.cdt_v import CDTPolicy

        return CDTPolicy.from_checkpoint(ckpt, device)
    return policy_act_fn(DeterministicPolicy.from_checkpoint(ckpt), device)

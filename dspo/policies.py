"""Load any trained policy checkpoint as something the rollouts can drive.

Two kinds exist: `deterministic_policy` (BC, DSPO, TD3+BC, IQL, CQL, DWBC, RGM: an MLP with its
normalizers) and `cdt_policy` (CDT-V: a decision transformer with memory, driven through the
`EpisodicPolicy` hooks of `dspo.rollout`).
"""
from __future__ import annotations

from pathlib import Path

import torch

from dspo.models.mlp import DeterministicPolicy
from dspo.rollout import ActFn, CheckpointMismatchError, EpisodicPolicy, check_obs_dim
from dspo.train.bc import policy_act_fn

POLICY_KINDS = ("deterministic_policy", "cdt_policy")


def load_policy(path: Path, task: str, obs_dim: int, device: torch.device | str = "cpu") -> ActFn | EpisodicPolicy:
    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: policy checkpoint not found (run its training stage first)")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    kind = ckpt.get("kind") if isinstance(ckpt, dict) else None
    if kind not in POLICY_KINDS:
        raise CheckpointMismatchError(f"{path}: not a policy checkpoint (kind={kind!r}; expected one of {POLICY_KINDS})")
    if ckpt["task"] != task:
        raise CheckpointMismatchError(f"{path}: policy was trained on task {ckpt['task']!r}, not {task!r}")
    check_obs_dim(ckpt["obs_dim"], obs_dim, f"policy {path}", task)
    if kind == "cdt_policy":
        from dspo.offline.cdt import CDTPolicy

        return CDTPolicy.from_checkpoint(ckpt, device)
    return policy_act_fn(DeterministicPolicy.from_checkpoint(ckpt), device)

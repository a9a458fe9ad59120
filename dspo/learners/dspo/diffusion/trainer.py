"""DSPO stage 2a: classifier-free conditional trajectory diffusion (paper §3.2, Eq. 6; App. B, D.1).

x⁰ is a normalized segment of `diffusion.horizon` consecutive (state, action) steps of one
trajectory; the condition is (r, z) = (the trajectory's normalized return, its safety signal from
the discriminator). The noise schedule, the forward noising (`add_noise`) and the reverse steps
come from diffusers' DDPMScheduler / DDIMScheduler; the ε-network is a temporal U-Net
(dspo.learners.dspo.diffusion.model). Training drops the condition with probability
`diffusion.cond_dropout` so that sampling can use classifier-free guidance
ε = ε(∅) + w (ε(r, z) − ε(∅)). An EMA copy of the weights is what gets sampled and saved.

Normalization (owned by SegmentDataset, saved in the checkpoint so it is self-describing):
- states: Gaussian (per-feature mean/std over every step of the dataset);
- actions: the task's action bounds mapped onto [-1, 1] (BoundsNormalizer), so clipping a
  generated action to the bounds is clipping to [-1, 1] in model space;
- return condition: `diffusion.return_scale` = "minmax" -> (R − R_min) / (R_max − R_min) over the
  episodes of the dataset (in [0, 1]), or "max" -> R / max|R|;
- z is used as the discriminator wrote it (a sigmoid output, already in [0, 1]).
"""
from __future__ import annotations

import copy
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import numpy as np
import pandas as pd
import torch
from pydantic import Field, StrictInt, model_validator

from dspo.core.artifacts import load_checkpoint, save_checkpoint, save_torch
from dspo.core.config import NonNegFloat, NonNegInt, PosFloat, PosInt, Section, UnitFloat, Widths
from dspo.core.errors import CheckpointMismatchError, DataError, ParamError
from dspo.data.episodes import episodes_of, window_index
from dspo.data.schemas import StepData
from dspo.learners.contract import FitState, fit
from dspo.learners.dspo.diffusion.model import TemporalUnet
from dspo.learners.dspo.diffusion.sampling import GenerateConfig, make_scheduler, sample_segments, training_target
from dspo.learners.normalizers import BoundsNormalizer, GaussianNormalizer

RETURN_SCALES = ("minmax", "max")
CHECKPOINT_KIND = "trajectory_diffusion"


# ----------------------------------------------------------------------------- configs
class DiffusionConfig(Section):
    """params.yaml `diffusion`: the conditional trajectory diffusion model and its training."""

    section: ClassVar[str] = "diffusion"
    horizon: PosInt  # segment length H (steps)
    steps: Annotated[StrictInt, Field(ge=2)]  # noise levels T
    beta_schedule: Literal["squaredcos_cap_v2", "linear"]
    dim: Annotated[StrictInt, Field(ge=8, multiple_of=8)]  # GroupNorm uses 8 groups
    dim_mults: Widths
    cond_dropout: UnitFloat
    train_steps: PosInt
    batch_size: PosInt
    lr: PosFloat
    weight_decay: NonNegFloat
    ema_decay: UnitFloat
    ema_start: NonNegInt
    grad_clip: NonNegFloat  # 0 = off
    log_every: PosInt
    save_every: PosInt
    return_scale: Literal["minmax", "max"]
    clip_denoised: NonNegFloat  # clip the predicted x0 to [-c, c] while sampling; 0 = off
    prediction: Literal["epsilon", "v_prediction", "sample"]  # what the network regresses

    @model_validator(mode="after")
    def _horizon_fits_unet(self) -> "DiffusionConfig":
        levels = 2 ** (len(self.dim_mults) - 1)
        if self.horizon % levels:
            raise DataError(f"horizon={self.horizon} must be divisible by {levels} (2^(len(dim_mults)-1): "
                             f"the U-Net halves the horizon per level)")
        return self


# ----------------------------------------------------------------------------- data
@dataclass
class SegmentNormalizer:
    """Maps (states, actions, return) to model space and back; travels with the checkpoint."""

    obs: GaussianNormalizer
    act: BoundsNormalizer
    return_offset: float
    return_scale: float

    @property
    def obs_dim(self) -> int:
        return len(self.obs.mean)

    @property
    def act_dim(self) -> int:
        return len(self.act.low)

    @classmethod
    def fit(cls, obs: np.ndarray, act_low: np.ndarray, act_high: np.ndarray, episode_returns: np.ndarray,
            return_scale: str) -> "SegmentNormalizer":
        if not (np.all(np.isfinite(act_low)) and np.all(np.isfinite(act_high))):
            raise DataError("diffusion needs finite action bounds to normalize actions onto [-1, 1]")
        returns = np.asarray(episode_returns, dtype=np.float64)
        if return_scale == "minmax":
            offset, scale = returns.min(), returns.max() - returns.min()
        elif return_scale == "max":
            offset, scale = 0.0, np.abs(returns).max()
        else:
            raise ParamError(f"diffusion.return_scale={return_scale!r} must be one of "
                             f"{list(RETURN_SCALES)}")
        return cls(GaussianNormalizer.fit(obs), BoundsNormalizer(act_low, act_high), float(offset),
                   float(scale) if scale > 1e-8 else 1.0)

    def normalize(self, obs: np.ndarray, act: np.ndarray) -> np.ndarray:
        return np.concatenate([self.obs.normalize(obs), self.act.normalize(act)], axis=-1).astype(np.float32)

    def unnormalize(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        """Model-space segments [..., D] -> (states, actions clipped to the bounds, #action entries clipped)."""
        obs, act = x[..., :self.obs_dim], x[..., self.obs_dim:]
        n_out = int(np.sum(np.abs(act) > 1.0))
        return self.obs.unnormalize(obs), self.act.unnormalize(np.clip(act, -1.0, 1.0)), n_out

    def normalize_return(self, returns) -> np.ndarray:
        return ((np.asarray(returns, dtype=np.float64) - self.return_offset) / self.return_scale).astype(np.float32)

    def state_dict(self) -> dict:
        return {"obs": self.obs.state_dict(), "act": self.act.state_dict(),
                "return_offset": self.return_offset, "return_scale": self.return_scale}

    @classmethod
    def from_state_dict(cls, state: dict) -> "SegmentNormalizer":
        return cls(GaussianNormalizer.from_state_dict(state["obs"]), BoundsNormalizer.from_state_dict(state["act"]),
                   float(state["return_offset"]), float(state["return_scale"]))


def episode_conditions(conditions: pd.DataFrame, episode_ids: np.ndarray) -> np.ndarray:
    """[n_episodes, 2] (raw return, z) in the order of `episode_ids`; refuse missing, duplicate or NaN rows."""
    missing_cols = {"episode_id", "return", "z"} - set(conditions.columns)
    if missing_cols:
        raise DataError(f"condition table lacks column(s) {sorted(missing_cols)}; expected episode_id, return, z")
    if conditions["episode_id"].duplicated().any():
        dup = conditions.loc[conditions["episode_id"].duplicated(), "episode_id"].tolist()[:5]
        raise DataError(f"condition table has duplicate episode_id(s), e.g. {dup}")
    lacking = episode_ids[~np.isin(episode_ids, conditions["episode_id"].to_numpy())]
    if len(lacking):
        raise DataError(f"condition table has no row for {len(lacking)} episode(s) of the dataset, "
                         f"e.g. episode_id {lacking[:5].tolist()} (run label_safety on this dataset)")
    values = conditions.set_index("episode_id").reindex(episode_ids)[["return", "z"]].to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(values)):
        bad = episode_ids[~np.all(np.isfinite(values), axis=1)]
        raise DataError(f"condition table has NaN/inf return or z for episode_id {bad[:5].tolist()}")
    return values


class SegmentDataset:
    """Random `horizon`-step windows of the episodes, with each episode's (r, z) condition.

    Built once as a padded [n_episodes, max_len, D] tensor plus the flat list of valid
    (episode, start) pairs, so a batch is two tensor indexing operations. Every window lies
    inside one episode; episodes shorter than the horizon contribute none.
    """

    def __init__(self, data: StepData, conditions: pd.DataFrame, horizon: int, act_low: np.ndarray,
                 act_high: np.ndarray, return_scale: str, device: torch.device | str = "cpu"):
        if len(data.episode_id) == 0:
            raise DataError("diffusion needs a non-empty dataset")
        episodes = episodes_of(data.episode_id, data.step)
        order, ep_ids, ep_of_row, lengths = episodes.order, episodes.ids, episodes.episode_of_row, episodes.lengths
        steps = data.step[order]
        starts_of_ep = episodes.first
        pos = episodes.position
        if np.any(steps - steps[starts_of_ep][ep_of_row] != pos):
            raise DataError("dataset episodes have gaps or repeated steps; segments need consecutive steps")

        values = episode_conditions(conditions, ep_ids)
        if lengths.max() < horizon:
            raise DataError(f"diffusion.horizon={horizon} is longer than every episode (longest: {lengths.max()} "
                             f"steps); lower diffusion.horizon")

        self.horizon, self.device = horizon, torch.device(device)
        self.episode_ids, self.lengths = ep_ids, lengths
        self.normalizer = SegmentNormalizer.fit(data.obs, act_low, act_high, values[:, 0], return_scale)
        x = self.normalizer.normalize(data.obs[order], np.clip(data.action[order], act_low, act_high))
        padded = np.zeros((len(ep_ids), lengths.max(), x.shape[1]), dtype=np.float32)
        padded[ep_of_row, pos] = x
        self.padded = torch.as_tensor(padded, device=self.device)
        self.cond = torch.as_tensor(np.stack([self.normalizer.normalize_return(values[:, 0]), values[:, 1]], 1),
                                    dtype=torch.float32, device=self.device)
        n_starts = np.maximum(lengths - horizon + 1, 0)
        self.window_episode = torch.as_tensor(np.repeat(np.arange(len(ep_ids)), n_starts), device=self.device)
        offsets = np.concatenate([[0], np.cumsum(n_starts)[:-1]])
        starts = np.arange(n_starts.sum()) - np.repeat(offsets, n_starts)
        self.window_start = torch.as_tensor(starts, device=self.device)
        self.n_short_episodes = int(np.sum(lengths < horizon))
        digest = hashlib.sha1(str((horizon, padded.shape)).encode())  # identifies the data for resumption
        digest.update(padded)
        digest.update(self.cond.cpu().numpy())
        self.fingerprint = digest.hexdigest()

    @property
    def transition_dim(self) -> int:
        return self.padded.shape[-1]

    @property
    def n_windows(self) -> int:
        return len(self.window_start)

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch of segments [B, H, D] and their conditions [B, 2] = (r, z), uniform over windows."""
        idx = torch.randint(0, self.n_windows, (batch_size,), generator=generator, device=self.device)
        ep = self.window_episode[idx]
        t, _ = window_index(self.window_start[idx], self.horizon)
        return self.padded[ep[:, None], t], self.cond[ep]


# ----------------------------------------------------------------------------- training
def build_model(transition_dim: int, cfg: DiffusionConfig) -> TemporalUnet:
    return TemporalUnet(transition_dim, cfg.horizon, cfg.dim, cfg.dim_mults)


def _resume_key(cfg: DiffusionConfig, seed: int, fingerprint: str) -> dict:
    """What must match for a saved state to be continued (train_steps may grow; save_every is bookkeeping)."""
    config = {k: v for k, v in cfg.to_dict().items() if k not in ("train_steps", "save_every")}
    return {"config": config, "seed": seed, "data": fingerprint}


class DiffusionLearner:
    """ε̂(xᵗ, t, r, z) (or x̂⁰ / v̂) trained with ‖ε̂ − ε‖² (Eq. 6), condition dropped at `cond_dropout`, EMA weights."""

    def __init__(self, dataset: SegmentDataset, cfg: DiffusionConfig, device: torch.device, seed: int):
        self.dataset, self.cfg, self.device = dataset, cfg, device
        torch.manual_seed(seed)
        self.model = build_model(dataset.transition_dim, cfg).to(device)
        self.ema = copy.deepcopy(self.model).requires_grad_(False)
        self.optim = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        # training uses only the forward process (add_noise, targets): clipping x0 is a sampling-time setting
        self.scheduler = make_scheduler("ddpm", cfg.steps, cfg.beta_schedule, 0.0, cfg.prediction)
        self.gen = torch.Generator(device=device).manual_seed(seed)
        self.model.train()

    def batch(self, step: int):
        """Segments, conditions, noise, noise levels and the condition-dropout mask: all from one generator."""
        cfg, gen, device = self.cfg, self.gen, self.device
        x0, cond = self.dataset.sample(cfg.batch_size, gen)
        noise = torch.randn(x0.shape, generator=gen, device=device)
        t = torch.randint(0, cfg.steps, (cfg.batch_size,), generator=gen, device=device)
        drop = torch.rand(cfg.batch_size, generator=gen, device=device) < cfg.cond_dropout
        return x0, cond, noise, t, drop

    def update(self, batch, step: int) -> dict[str, float]:
        cfg = self.cfg
        x0, cond, noise, t, drop = batch
        pred = self.model(self.scheduler.add_noise(x0, noise, t), t, cond[:, 0], cond[:, 1], drop)
        loss = torch.mean((pred - training_target(self.scheduler, x0, noise, t, cfg.prediction)) ** 2)
        self.optim.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optim.step()
        with torch.no_grad():  # EMA: a plain copy until ema_start, then an exponential average
            decay = cfg.ema_decay if step > cfg.ema_start else 0.0
            for e, p in zip(self.ema.parameters(), self.model.parameters()):
                e.lerp_(p, 1.0 - decay)
        return {"loss": loss.item()}

    def state(self, key: dict, fit_state: FitState) -> dict:
        return {"key": key, "step": fit_state.step, "model": self.model.state_dict(), "ema": self.ema.state_dict(),
                "optim": self.optim.state_dict(), "gen": self.gen.get_state(), "history": fit_state.history,
                "running": fit_state.sums.get("loss", 0.0)}

    def load_state(self, state: dict) -> FitState:
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optim.load_state_dict(state["optim"])
        self.gen.set_state(state["gen"].cpu())
        history = state["history"]
        last_row = history[-1]["step"] if history else 0
        return FitState(step=state["step"], history=history, sums={"loss": state["running"]},
                        count=state["step"] - last_row)


def train_diffusion(dataset: SegmentDataset, cfg: DiffusionConfig, device: torch.device | str, seed: int,
                    state_path: str | os.PathLike | None = None) -> tuple[TemporalUnet, pd.DataFrame]:
    """Fit the network; return the EMA network (CPU, eval) and the loss curve.

    Resumable: every `save_every` steps (and at the end) the full training state is written
    atomically to `state_path`; a later call with the same config, seed and data continues from
    it, and gives the same weights as an uninterrupted run (all randomness comes from one
    torch.Generator whose state is saved).
    """
    device = torch.device(device)
    if dataset.device != device:
        raise DataError(f"dataset tensors live on {dataset.device}, training asked for {device}")
    learner = DiffusionLearner(dataset, cfg, device, seed)
    key = _resume_key(cfg, seed, dataset.fingerprint)
    fit_state = FitState()
    if state_path is not None and Path(state_path).exists():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        if state.get("key") == key and state["step"] <= cfg.train_steps:
            fit_state = learner.load_state(state)
            print(f"train_diffusion: resuming from step {fit_state.step} of {cfg.train_steps} ({state_path})")
        else:
            why = "another config/seed/dataset" if state.get("key") != key else f"step {state['step']} > train_steps"
            print(f"train_diffusion: {state_path} is from {why}; starting from step 0")

    def save(current: FitState) -> None:
        if state_path is not None:
            save_torch(learner.state(key, current), state_path)

    history = fit(learner, cfg.train_steps, cfg.log_every, "diffusion", state=fit_state,
                  save_every=cfg.save_every, save=save, columns=["step", "loss"])
    return learner.ema.cpu().eval(), history


# ----------------------------------------------------------------------------- checkpoints
@dataclass
class DiffusionBundle:
    """What generate needs: the EMA network, its config and the normalizer it was trained with."""

    model: TemporalUnet
    config: DiffusionConfig
    normalizer: SegmentNormalizer
    task: str

    def sample(self, returns: np.ndarray, z: np.ndarray, gen: GenerateConfig, device: torch.device | str,
               seed: int) -> tuple[np.ndarray, np.ndarray, int]:
        """Raw (return, z) -> unnormalized (states [n, H, obs_dim], actions [n, H, act_dim], #actions clipped)."""
        x = sample_segments(self.model, self.normalizer.normalize_return(returns), z, guidance=gen.guidance,
                            sampler=gen.sampler, sampling_steps=gen.sampling_steps, noise_steps=self.config.steps,
                            beta_schedule=self.config.beta_schedule, batch_size=gen.batch_size, device=device,
                            seed=seed, clip_denoised=self.config.clip_denoised,
                            prediction=self.config.prediction)
        return self.normalizer.unnormalize(x)


def save_diffusion_checkpoint(path: str | os.PathLike, model: TemporalUnet, cfg: DiffusionConfig,
                              normalizer: SegmentNormalizer, task: str, extra: dict | None = None) -> None:
    save_checkpoint({"kind": CHECKPOINT_KIND, "task": task, "obs_dim": normalizer.obs_dim, "act_dim": normalizer.act_dim,
                     "config": cfg.to_dict(), "model_hparams": model.hparams(), "normalizer": normalizer.state_dict(),
                     "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}, **(extra or {})}, path)


def load_diffusion_checkpoint(path: str | os.PathLike, task: str, obs_dim: int, act_dim: int,
                              act_low: np.ndarray | None = None, act_high: np.ndarray | None = None) -> DiffusionBundle:
    """Load a diffusion checkpoint; refuse one of another task, other dims or other action bounds."""
    ckpt = load_checkpoint(path, CHECKPOINT_KIND, task=task, obs_dim=obs_dim, act_dim=act_dim,
                           producer="train_diffusion")
    normalizer = SegmentNormalizer.from_state_dict(ckpt["normalizer"])
    dims = (normalizer.obs_dim, normalizer.act_dim)
    if dims != (obs_dim, act_dim) or ckpt["model_hparams"]["transition_dim"] != obs_dim + act_dim:
        raise CheckpointMismatchError(f"{path}: checkpoint's normalizer has obs/action sizes {dims}, task {task!r} "
                                      f"has {obs_dim}/{act_dim}")
    for name, given, stored in (("low", act_low, normalizer.act.low), ("high", act_high, normalizer.act.high)):
        if given is not None and not np.allclose(np.asarray(given, dtype=np.float32), stored):
            raise CheckpointMismatchError(f"{path}: checkpoint's action {name} bound {stored.tolist()} differs from "
                                          f"the task's {np.asarray(given).tolist()}")
    cfg = DiffusionConfig.from_section(ckpt["config"], "diffusion", source=path)
    hp = ckpt["model_hparams"]
    model = TemporalUnet(hp["transition_dim"], hp["horizon"], hp["dim"], hp["dim_mults"])
    model.load_state_dict(ckpt["state_dict"])
    return DiffusionBundle(model.eval(), cfg, normalizer, task)

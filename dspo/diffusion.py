"""DSPO stage 2a: classifier-free conditional trajectory diffusion (paper §3.2, Eq. 6; App. B, D.1).

x⁰ is a normalized segment of `diffusion.horizon` consecutive (state, action) steps of one
trajectory; the condition is (r, z) = (the trajectory's normalized return, its safety signal from
the discriminator). The noise schedule, the forward noising (`add_noise`) and the reverse steps
come from diffusers' DDPMScheduler / DDIMScheduler; the ε-network is a temporal U-Net
(dspo.models.temporal_unet). Training drops the condition with probability
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
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from diffusers import DDIMScheduler, DDPMScheduler
from tqdm import trange

from dspo.artifacts import save_torch
from dspo.config import ParamError, require, require_int_list
from dspo.models.temporal_unet import TemporalUnet
from dspo.normalizers import BoundsNormalizer, GaussianNormalizer
from dspo.schemas import StepData

PREDICTIONS = ("epsilon", "v_prediction", "sample")  # diffusers' prediction_type values
BETA_SCHEDULES = ("squaredcos_cap_v2", "linear")  # squaredcos_cap_v2 = cosine (Nichol & Dhariwal)
RETURN_SCALES = ("minmax", "max")
SAMPLERS = ("ddpm", "ddim")
CHECKPOINT_KIND = "trajectory_diffusion"


# ----------------------------------------------------------------------------- configs
def _choice(cfg: dict, key: str, name: str, allowed: tuple[str, ...]) -> str:
    if key not in cfg:
        raise ParamError(f"params.yaml: missing {name}.{key}")
    if cfg[key] not in allowed:
        raise ParamError(f"params.yaml: {name}.{key}={cfg[key]!r} must be one of {list(allowed)}")
    return cfg[key]


def _optional_number(cfg: dict, key: str, name: str, **bounds) -> float | None:
    if key not in cfg:
        raise ParamError(f"params.yaml: missing {name}.{key} (null for the default)")
    return None if cfg[key] is None else float(require(cfg, key, name, **bounds))


@dataclass
class DiffusionConfig:
    horizon: int
    steps: int  # noise levels T
    beta_schedule: str
    dim: int
    dim_mults: list[int]
    cond_dropout: float
    train_steps: int
    batch_size: int
    lr: float
    weight_decay: float
    ema_decay: float
    ema_start: int
    grad_clip: float  # 0 = off
    log_every: int
    save_every: int
    return_scale: str
    clip_denoised: float = 0.0  # clip the predicted x0 to [-c, c] while sampling; 0 = off
    prediction: str = "epsilon"  # what the network predicts: epsilon | v_prediction | sample (x0)

    @classmethod
    def from_params(cls, cfg: dict, name: str = "diffusion") -> "DiffusionConfig":
        dim_mults = require_int_list(cfg, "dim_mults", name)
        out = cls(
            horizon=require(cfg, "horizon", name, kind=int, minimum=1),
            steps=require(cfg, "steps", name, kind=int, minimum=2),
            beta_schedule=_choice(cfg, "beta_schedule", name, BETA_SCHEDULES),
            dim=require(cfg, "dim", name, kind=int, minimum=8),
            dim_mults=dim_mults,
            cond_dropout=float(require(cfg, "cond_dropout", name, minimum=0, maximum=1)),
            train_steps=require(cfg, "train_steps", name, kind=int, minimum=1),
            batch_size=require(cfg, "batch_size", name, kind=int, minimum=1),
            lr=float(require(cfg, "lr", name, minimum=0, strict_min=True)),
            weight_decay=float(require(cfg, "weight_decay", name, minimum=0)),
            ema_decay=float(require(cfg, "ema_decay", name, minimum=0, maximum=1)),
            ema_start=require(cfg, "ema_start", name, kind=int, minimum=0),
            grad_clip=float(require(cfg, "grad_clip", name, minimum=0)),
            log_every=require(cfg, "log_every", name, kind=int, minimum=1),
            save_every=require(cfg, "save_every", name, kind=int, minimum=1),
            return_scale=_choice(cfg, "return_scale", name, RETURN_SCALES),
            clip_denoised=float(require(cfg, "clip_denoised", name, minimum=0)),
            prediction=_choice(cfg, "prediction", name, PREDICTIONS),
        )
        if out.dim % 8:
            raise ParamError(f"params.yaml: {name}.dim={out.dim} must be a multiple of 8 (GroupNorm uses 8 groups)")
        levels = 2 ** (len(dim_mults) - 1)
        if out.horizon % levels:
            raise ParamError(f"params.yaml: {name}.horizon={out.horizon} must be divisible by {levels} "
                             f"(2^(len({name}.dim_mults)-1): the U-Net halves the horizon per level)")
        return out


@dataclass
class GenerateConfig:
    n_segments: int
    guidance: float  # w: 0 = unconditional, 1 = conditional, > 1 = guided
    sampler: str
    sampling_steps: int
    batch_size: int
    return_condition: float | None  # raw episode return; None = uniform over the safe demos' return range
    z_condition: float | None  # None = the caller's value (the smallest z of a safe demo, App. D.1)
    seed: int

    @classmethod
    def from_params(cls, cfg: dict, name: str = "generate") -> "GenerateConfig":
        return cls(
            n_segments=require(cfg, "n_segments", name, kind=int, minimum=1),
            guidance=float(require(cfg, "guidance", name, minimum=0)),
            sampler=_choice(cfg, "sampler", name, SAMPLERS),
            sampling_steps=require(cfg, "sampling_steps", name, kind=int, minimum=1),
            batch_size=require(cfg, "batch_size", name, kind=int, minimum=1),
            return_condition=_optional_number(cfg, "return_condition", name),
            z_condition=_optional_number(cfg, "z_condition", name),
            seed=require(cfg, "seed", name, kind=int, minimum=0),
        )


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
            raise ValueError("diffusion needs finite action bounds to normalize actions onto [-1, 1]")
        returns = np.asarray(episode_returns, dtype=np.float64)
        if return_scale == "minmax":
            offset, scale = returns.min(), returns.max() - returns.min()
        elif return_scale == "max":
            offset, scale = 0.0, np.abs(returns).max()
        else:
            raise ParamError(f"params.yaml: diffusion.return_scale={return_scale!r} must be one of "
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
        raise ValueError(f"condition table lacks column(s) {sorted(missing_cols)}; expected episode_id, return, z")
    if conditions["episode_id"].duplicated().any():
        dup = conditions.loc[conditions["episode_id"].duplicated(), "episode_id"].tolist()[:5]
        raise ValueError(f"condition table has duplicate episode_id(s), e.g. {dup}")
    lacking = episode_ids[~np.isin(episode_ids, conditions["episode_id"].to_numpy())]
    if len(lacking):
        raise ValueError(f"condition table has no row for {len(lacking)} episode(s) of the dataset, "
                         f"e.g. episode_id {lacking[:5].tolist()} (run label_safety on this dataset)")
    values = conditions.set_index("episode_id").reindex(episode_ids)[["return", "z"]].to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(values)):
        bad = episode_ids[~np.all(np.isfinite(values), axis=1)]
        raise ValueError(f"condition table has NaN/inf return or z for episode_id {bad[:5].tolist()}")
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
            raise ValueError("diffusion needs a non-empty dataset")
        order = np.lexsort((data.step, data.episode_id))
        ep_ids, ep_of_row, lengths = np.unique(data.episode_id[order], return_inverse=True, return_counts=True)
        steps = data.step[order]
        starts_of_ep = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        pos = np.arange(len(order)) - starts_of_ep[ep_of_row]
        if np.any(steps - steps[starts_of_ep][ep_of_row] != pos):
            raise ValueError("dataset episodes have gaps or repeated steps; segments need consecutive steps")

        values = episode_conditions(conditions, ep_ids)
        if lengths.max() < horizon:
            raise ValueError(f"diffusion.horizon={horizon} is longer than every episode (longest: {lengths.max()} "
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
        t = self.window_start[idx][:, None] + torch.arange(self.horizon, device=self.device)[None, :]
        return self.padded[ep[:, None], t], self.cond[ep]


# ----------------------------------------------------------------------------- training
def make_scheduler(sampler: str, steps: int, beta_schedule: str, clip_denoised: float = 0.0,
                   prediction: str = "epsilon") -> DDPMScheduler | DDIMScheduler:
    """The diffusers scheduler for `steps` noise levels; "trailing" spacing so few-step sampling starts at T-1.

    `clip_denoised` > 0 clips the predicted x0 to [-c, c] at every step (Diffuser's `clip_denoised`).
    Without it, ε-prediction under the cosine schedule blows up at the top noise levels, where
    x0 = (x_t - sqrt(1 - ᾱ_t) ε̂) / sqrt(ᾱ_t) divides a small ε̂ error by sqrt(ᾱ_T) ~ 5e-4 (measured on
    BallCircle: samples ~300 standard deviations off the data).
    """
    cls = {"ddpm": DDPMScheduler, "ddim": DDIMScheduler}[sampler]
    return cls(num_train_timesteps=steps, beta_schedule=beta_schedule, clip_sample=clip_denoised > 0,
               clip_sample_range=clip_denoised if clip_denoised > 0 else 1.0, prediction_type=prediction,
               timestep_spacing="trailing")


def training_target(scheduler: DDPMScheduler, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor,
                    prediction: str) -> torch.Tensor:
    """What the network regresses: ε (Eq. 6), v = sqrt(ᾱ)ε - sqrt(1-ᾱ)x0, or x0 itself."""
    if prediction == "epsilon":
        return noise
    if prediction == "v_prediction":
        return scheduler.get_velocity(x0, noise, t)
    return x0


def build_model(transition_dim: int, cfg: DiffusionConfig) -> TemporalUnet:
    return TemporalUnet(transition_dim, cfg.horizon, cfg.dim, cfg.dim_mults)


def _resume_key(cfg: DiffusionConfig, seed: int, fingerprint: str) -> dict:
    """What must match for a saved state to be continued (train_steps may grow; save_every is bookkeeping)."""
    config = {k: v for k, v in asdict(cfg).items() if k not in ("train_steps", "save_every")}
    return {"config": config, "seed": seed, "data": fingerprint}


def train_diffusion(dataset: SegmentDataset, cfg: DiffusionConfig, device: torch.device | str, seed: int,
                    state_path: str | os.PathLike | None = None) -> tuple[TemporalUnet, pd.DataFrame]:
    """Fit ε̂(xᵗ, t, r, z) with ‖ε̂ − ε‖² (Eq. 6); return the EMA network (CPU, eval) and the loss curve.

    Resumable: every `save_every` steps (and at the end) the full training state is written
    atomically to `state_path`; a later call with the same config, seed and data continues from
    it, and gives the same weights as an uninterrupted run (all randomness comes from one
    torch.Generator whose state is saved).
    """
    device = torch.device(device)
    if dataset.device != device:
        raise ValueError(f"dataset tensors live on {dataset.device}, training asked for {device}")
    torch.manual_seed(seed)
    model = build_model(dataset.transition_dim, cfg).to(device)
    ema = copy.deepcopy(model).requires_grad_(False)
    optim = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = make_scheduler("ddpm", cfg.steps, cfg.beta_schedule, prediction=cfg.prediction)
    gen = torch.Generator(device=device).manual_seed(seed)
    key = _resume_key(cfg, seed, dataset.fingerprint)
    start, history, running = 0, [], 0.0

    if state_path is not None and Path(state_path).exists():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        if state.get("key") == key and state["step"] <= cfg.train_steps:
            model.load_state_dict(state["model"])
            ema.load_state_dict(state["ema"])
            optim.load_state_dict(state["optim"])
            gen.set_state(state["gen"].cpu())
            start, history, running = state["step"], state["history"], state["running"]
            print(f"train_diffusion: resuming from step {start} of {cfg.train_steps} ({state_path})")
        else:
            why = "another config/seed/dataset" if state.get("key") != key else f"step {state['step']} > train_steps"
            print(f"train_diffusion: {state_path} is from {why}; starting from step 0")

    def save_state(step: int) -> None:
        if state_path is not None:
            save_torch({"key": key, "step": step, "model": model.state_dict(), "ema": ema.state_dict(),
                        "optim": optim.state_dict(), "gen": gen.get_state(), "history": history,
                        "running": running}, state_path)

    model.train()
    for step in trange(start + 1, cfg.train_steps + 1, initial=start, total=cfg.train_steps, desc="diffusion",
                       leave=False, mininterval=1.0):
        x0, cond = dataset.sample(cfg.batch_size, gen)
        noise = torch.randn(x0.shape, generator=gen, device=device)
        t = torch.randint(0, cfg.steps, (cfg.batch_size,), generator=gen, device=device)
        drop = torch.rand(cfg.batch_size, generator=gen, device=device) < cfg.cond_dropout
        eps_hat = model(scheduler.add_noise(x0, noise, t), t, cond[:, 0], cond[:, 1], drop)
        loss = torch.mean((eps_hat - training_target(scheduler, x0, noise, t, cfg.prediction)) ** 2)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optim.step()
        with torch.no_grad():  # EMA: a plain copy until ema_start, then an exponential average
            decay = cfg.ema_decay if step > cfg.ema_start else 0.0
            for e, p in zip(ema.parameters(), model.parameters()):
                e.lerp_(p, 1.0 - decay)
        running += loss.item()
        if step % cfg.log_every == 0 or step == cfg.train_steps:
            count = cfg.log_every if step % cfg.log_every == 0 else step % cfg.log_every
            history.append({"step": step, "loss": running / count})
            running = 0.0
        if step % cfg.save_every == 0 or step == cfg.train_steps:
            save_state(step)
    return ema.cpu().eval(), pd.DataFrame(history, columns=["step", "loss"])


# ----------------------------------------------------------------------------- sampling
def guided_eps(model: TemporalUnet, x: torch.Tensor, t: torch.Tensor, r: torch.Tensor, z: torch.Tensor,
               guidance: float) -> torch.Tensor:
    """Classifier-free guidance ε = ε(∅) + w (ε(r, z) − ε(∅)); w = 0 and w = 1 run one pass only (exact)."""
    n = x.shape[0]
    if guidance == 0:
        return model(x, t, r, z, torch.ones(n, dtype=torch.bool, device=x.device))
    if guidance == 1:
        return model(x, t, r, z, torch.zeros(n, dtype=torch.bool, device=x.device))
    drop = torch.cat([torch.zeros(n, dtype=torch.bool), torch.ones(n, dtype=torch.bool)]).to(x.device)
    eps_c, eps_u = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([r, r]), torch.cat([z, z]), drop).chunk(2)
    return eps_u + guidance * (eps_c - eps_u)


@torch.no_grad()
def sample_segments(model: TemporalUnet, returns: np.ndarray, z: np.ndarray, *, guidance: float, sampler: str,
                    sampling_steps: int, noise_steps: int, beta_schedule: str, batch_size: int,
                    device: torch.device | str, seed: int, clip_denoised: float = 0.0,
                    prediction: str = "epsilon") -> np.ndarray:
    """Draw len(returns) segments [n, H, D] in model (normalized) space, conditioned on normalized (r, z).

    DDPM (ancestral, stochastic) or DDIM (η = 0, deterministic given the initial noise);
    `sampling_steps` < `noise_steps` skips levels ("trailing" spacing).
    """
    if guidance < 0:
        raise ParamError(f"params.yaml: generate.guidance={guidance!r} must be >= 0")
    if sampler not in SAMPLERS:
        raise ParamError(f"params.yaml: generate.sampler={sampler!r} must be one of {list(SAMPLERS)}")
    if not 1 <= sampling_steps <= noise_steps:
        raise ParamError(f"params.yaml: generate.sampling_steps={sampling_steps} must be in [1, {noise_steps}] "
                         f"(diffusion.steps={noise_steps} noise levels)")
    returns, z = np.asarray(returns, dtype=np.float32), np.asarray(z, dtype=np.float32)
    if returns.shape != z.shape or returns.ndim != 1:
        raise ValueError(f"returns and z must be 1-D of equal length, got {returns.shape} and {z.shape}")
    device = torch.device(device)
    model = model.to(device).eval()
    gen = torch.Generator(device=device).manual_seed(seed)
    out = []
    for lo in range(0, len(returns), batch_size):
        r_b = torch.as_tensor(returns[lo:lo + batch_size], device=device)
        z_b = torch.as_tensor(z[lo:lo + batch_size], device=device)
        scheduler = make_scheduler(sampler, noise_steps, beta_schedule, clip_denoised, prediction)
        scheduler.set_timesteps(sampling_steps, device=device)
        x = torch.randn((len(r_b), model.horizon, model.transition_dim), generator=gen, device=device)
        for t in scheduler.timesteps:
            eps = guided_eps(model, x, t.expand(len(r_b)), r_b, z_b, guidance)
            x = scheduler.step(eps, t, x, generator=gen).prev_sample
        out.append(x.cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.horizon, model.transition_dim), np.float32)


def draw_conditions(cfg: GenerateConfig, demo_returns: np.ndarray, default_z: float) -> tuple[np.ndarray, np.ndarray]:
    """Raw (return, z) per segment (App. D.1): return uniform over the safe demos' range, z = the smallest demo z."""
    rng = np.random.default_rng(cfg.seed)
    if cfg.return_condition is not None:
        returns = np.full(cfg.n_segments, cfg.return_condition)
    else:
        demo_returns = np.asarray(demo_returns, dtype=np.float64)
        if demo_returns.size == 0 or not np.all(np.isfinite(demo_returns)):
            raise ValueError("generate.return_condition is null but no finite safe-demo returns were given")
        returns = rng.uniform(demo_returns.min(), demo_returns.max(), cfg.n_segments)
    z_value = cfg.z_condition if cfg.z_condition is not None else default_z
    if z_value is None or not np.isfinite(z_value):
        raise ValueError(f"z condition must be a finite number, got {z_value!r}")
    return returns.astype(np.float32), np.full(cfg.n_segments, z_value, dtype=np.float32)


# ----------------------------------------------------------------------------- checkpoints
@dataclass
class DiffusionBundle:
    """What generate needs: the EMA network, its config and the normalizer it was trained with."""

    model: TemporalUnet
    config: DiffusionConfig
    normalizer: SegmentNormalizer
    task: str

    def sample(self, returns: np.ndarray, z: np.ndarray, gen: GenerateConfig,
               device: torch.device | str) -> tuple[np.ndarray, np.ndarray, int]:
        """Raw (return, z) -> unnormalized (states [n, H, obs_dim], actions [n, H, act_dim], #actions clipped)."""
        x = sample_segments(self.model, self.normalizer.normalize_return(returns), z, guidance=gen.guidance,
                            sampler=gen.sampler, sampling_steps=gen.sampling_steps, noise_steps=self.config.steps,
                            beta_schedule=self.config.beta_schedule, batch_size=gen.batch_size, device=device,
                            seed=gen.seed, clip_denoised=self.config.clip_denoised,
                            prediction=self.config.prediction)
        return self.normalizer.unnormalize(x)


def save_diffusion_checkpoint(path: str | os.PathLike, model: TemporalUnet, cfg: DiffusionConfig,
                              normalizer: SegmentNormalizer, task: str, extra: dict | None = None) -> None:
    save_torch({"kind": CHECKPOINT_KIND, "task": task, "obs_dim": normalizer.obs_dim, "act_dim": normalizer.act_dim,
                "config": asdict(cfg), "model_hparams": model.hparams(), "normalizer": normalizer.state_dict(),
                "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}, **(extra or {})}, path)


def load_diffusion_checkpoint(path: str | os.PathLike, task: str, obs_dim: int, act_dim: int,
                              act_low: np.ndarray | None = None, act_high: np.ndarray | None = None) -> DiffusionBundle:
    """Load a diffusion checkpoint; refuse one of another task, other dims or other action bounds."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: file not found (run train_diffusion first)")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    kind = ckpt.get("kind") if isinstance(ckpt, dict) else type(ckpt).__name__
    if kind != CHECKPOINT_KIND:
        raise ValueError(f"{path}: not a trajectory-diffusion checkpoint (kind={kind!r}, expected {CHECKPOINT_KIND!r})")
    if ckpt["task"] != task:
        raise ValueError(f"{path}: checkpoint was trained for task {ckpt['task']!r}, expected {task!r}")
    normalizer = SegmentNormalizer.from_state_dict(ckpt["normalizer"])
    dims = (ckpt["obs_dim"], ckpt["act_dim"], normalizer.obs_dim, normalizer.act_dim)
    if dims != (obs_dim, act_dim, obs_dim, act_dim) or ckpt["model_hparams"]["transition_dim"] != obs_dim + act_dim:
        raise ValueError(f"{path}: checkpoint has obs/action sizes {ckpt['obs_dim']}/{ckpt['act_dim']} (normalizer "
                         f"{normalizer.obs_dim}/{normalizer.act_dim}), task {task!r} has {obs_dim}/{act_dim}")
    for name, given, stored in (("low", act_low, normalizer.act.low), ("high", act_high, normalizer.act.high)):
        if given is not None and not np.allclose(np.asarray(given, dtype=np.float32), stored):
            raise ValueError(f"{path}: checkpoint's action {name} bound {stored.tolist()} differs from the task's "
                             f"{np.asarray(given).tolist()}")
    cfg = DiffusionConfig(**ckpt["config"])
    hp = ckpt["model_hparams"]
    model = TemporalUnet(hp["transition_dim"], hp["horizon"], hp["dim"], hp["dim_mults"])
    model.load_state_dict(ckpt["state_dict"])
    return DiffusionBundle(model.eval(), cfg, normalizer, task)

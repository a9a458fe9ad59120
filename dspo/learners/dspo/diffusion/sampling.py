"""The noise process and the reverse process of DSPO's trajectory diffusion (paper §3.2, Eq. 6; App. D.1).

The schedule, the forward noising and the reverse steps are diffusers' DDPMScheduler /
DDIMScheduler; this module adds what the paper specifies on top: the regression target of the
network (`diffusion.prediction`), classifier-free guidance ε = ε(∅) + w (ε(r, z) − ε(∅)), batched
sampling of segments, and how generation conditions (r, z) are drawn (`generate.*`).
"""
from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import torch
from diffusers import DDIMScheduler, DDPMScheduler

from dspo.core.config import Float, NonNegFloat, OpenUnitFloat, PosInt, Section
from dspo.core.errors import DataError, ParamError
from dspo.learners.dspo.diffusion.model import TemporalUnet

PREDICTIONS = ("epsilon", "v_prediction", "sample")  # diffusers' prediction_type values
BETA_SCHEDULES = ("squaredcos_cap_v2", "linear")  # squaredcos_cap_v2 = cosine (Nichol & Dhariwal)
SAMPLERS = ("ddpm", "ddim")


class GenerateConfig(Section):
    """params.yaml `generate`: sampling of safe high-return segments."""

    section: ClassVar[str] = "generate"
    n_segments: PosInt
    guidance: NonNegFloat  # w: 0 = unconditional, 1 = conditional, > 1 = guided
    sampler: Literal["ddpm", "ddim"]
    sampling_steps: PosInt
    batch_size: PosInt
    return_condition: Float | None  # raw episode return; None = uniform over `return_range`
    return_range: Literal["demos", "labeled_safe"]  # demos: the safe demos' range; labeled_safe: up to the best
    # return among episodes scored at least as safe as the least safe demo (z >= min demo z), so DSPO can exceed its demos
    z_condition: Float | Literal["random"] | None  # None = the smallest z of a safe demo (App. D.1);
    # "random" = uniform in [0, 1] per segment (a control: does the safety condition matter?)
    keep_fraction: OpenUnitFloat | None  # None = keep every segment; f = keep the f most-safe by the chain's discriminator
    report_points: PosInt  # points used for the quality report and plot


def most_safe(scores: np.ndarray, fraction: float) -> np.ndarray:
    """Indices (ascending) of the ceil(fraction * n) highest-scored segments, at least one; ties keep the earlier."""
    keep = max(1, int(np.ceil(fraction * len(scores))))
    return np.sort(np.argsort(-np.asarray(scores), kind="stable")[:keep])


def make_scheduler(sampler: str, steps: int, beta_schedule: str, clip_denoised: float,
                   prediction: str) -> DDPMScheduler | DDIMScheduler:
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
                    device: torch.device | str, seed: int, clip_denoised: float,
                    prediction: str) -> np.ndarray:
    """Draw len(returns) segments [n, H, D] in model (normalized) space, conditioned on normalized (r, z).

    DDPM (ancestral, stochastic) or DDIM (η = 0, deterministic given the initial noise);
    `sampling_steps` < `noise_steps` skips levels ("trailing" spacing).
    """
    if guidance < 0:
        raise ParamError(f"generate.guidance={guidance!r} must be >= 0")
    if sampler not in SAMPLERS:
        raise ParamError(f"generate.sampler={sampler!r} must be one of {list(SAMPLERS)}")
    if not 1 <= sampling_steps <= noise_steps:
        raise ParamError(f"generate.sampling_steps={sampling_steps} must be in [1, {noise_steps}] "
                         f"(diffusion.steps={noise_steps} noise levels)")
    returns, z = np.asarray(returns, dtype=np.float32), np.asarray(z, dtype=np.float32)
    if returns.shape != z.shape or returns.ndim != 1:
        raise DataError(f"returns and z must be 1-D of equal length, got {returns.shape} and {z.shape}")
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


def condition_range(cfg: GenerateConfig, returns: np.ndarray, z: np.ndarray, is_demo: np.ndarray) -> tuple[float, float]:
    """The return interval conditions are drawn from: from the lowest demo return up to the best demo return
    (`return_range: demos`, App. D.1) or the best return of any episode with z >= the smallest demo z."""
    returns, z, is_demo = (np.asarray(a) for a in (returns, z, is_demo))
    demo_returns = returns[is_demo].astype(np.float64)
    if demo_returns.size == 0 or not np.all(np.isfinite(demo_returns)):
        raise DataError("generate.return_condition is null but no finite safe-demo returns were given")
    high = demo_returns.max()
    if cfg.return_range == "labeled_safe":
        high = max(high, float(returns[z >= z[is_demo].min()].max()))
    return float(demo_returns.min()), float(high)


def draw_conditions(cfg: GenerateConfig, return_range: tuple[float, float] | None, default_z: float,
                    seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw (return, z) per segment (App. D.1): return uniform over `return_range`, z = the smallest demo z."""
    rng = np.random.default_rng(seed)
    if cfg.return_condition is not None:
        returns = np.full(cfg.n_segments, cfg.return_condition)
    else:
        if return_range is None:
            raise DataError("generate.return_condition is null but no return range was given")
        returns = rng.uniform(return_range[0], return_range[1], cfg.n_segments)
    if cfg.z_condition == "random":
        return returns.astype(np.float32), rng.uniform(0.0, 1.0, cfg.n_segments).astype(np.float32)
    z_value = cfg.z_condition if cfg.z_condition is not None else default_z
    if z_value is None or not np.isfinite(z_value):
        raise DataError(f"z condition must be a finite number, got {z_value!r}")
    return returns.astype(np.float32), np.full(cfg.n_segments, z_value, dtype=np.float32)

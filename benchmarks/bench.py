"""Benchmarks (not timed tests): simulator speed per family, lock-step vs single-env collection,
diffusion and baseline training rates, and the wall time of each pipeline stage as last run by `dvc repro`.

    python benchmarks/bench.py [--steps 2000] [--episodes 16] [--skip-metadrive]

Prints markdown tables. Stage times come from `.dvc/tmp/dspo-stage-times.jsonl`, which every
stage appends to when it finishes (see dspo/cli.py); run `dvc repro` first.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import typer

warnings.filterwarnings("ignore")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dspo.core.cli import TIMINGS_LOG  # noqa: E402
from dspo.data.envs import make_env  # noqa: E402
from dspo.data.tasks import get_task  # noqa: E402

FAMILY_TASKS = ["BallCircle", "CarCircle", "DroneRun", "SwimmerVelocity", "HopperVelocity", "PointGoal1",
                "MetaDrive-easysparse"]
app = typer.Typer(add_completion=False)


def random_steps_per_second(task: str, steps: int) -> float:
    env = make_env(task, seed=0)
    rng = np.random.default_rng(0)
    low, high = env.action_space.low, env.action_space.high
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(rng.uniform(low, high).astype(np.float32))
        if terminated or truncated:
            env.reset()
    rate = steps / (time.perf_counter() - start)
    env.close()
    return rate


def in_subprocess(task: str, steps: int) -> float:
    """MetaDrive allows one engine per process, so it is measured in its own interpreter."""
    code = f"import sys; sys.path.insert(0, {str(REPO)!r}); from benchmarks.bench import random_steps_per_second as f; print(f({task!r}, {steps}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def lockstep_rate(task: str, episodes: int, n_envs: int) -> float:
    """Env steps/s of `rollout_episodes` with a torch MLP policy in the loop."""
    import torch

    from dspo.learners.nets import DeterministicPolicy
    from dspo.learners.normalizers import BoundsNormalizer, GaussianNormalizer
    from dspo.data.rollout import rollout_episodes
    from dspo.evaluation.policies import policy_act_fn

    torch.manual_seed(0)
    torch.set_num_threads(1)
    env = make_env(task)
    obs_dim = env.observation_space.shape[0]
    policy = DeterministicPolicy(GaussianNormalizer(np.zeros(obs_dim, np.float32), np.ones(obs_dim, np.float32)),
                                 BoundsNormalizer(env.action_space.low, env.action_space.high), [64, 64])
    env.close()
    start = time.perf_counter()
    eps = rollout_episodes(get_task(task), policy_act_fn(policy), list(range(episodes)), n_envs=n_envs)
    return sum(ep.length for ep in eps) / (time.perf_counter() - start)


def diffusion_rates(batch: int = 64, horizon: int = 32, transition_dim: int = 10, n_segments: int = 64,
                    repeats: int = 20) -> list[tuple[str, float, str]]:
    """Training samples/s and sampling segments/s of the default U-Net: diffusers schedulers vs a plain
    PyTorch DDPM loop of the same model (the closed-form posterior, no scheduler object)."""
    import resource

    import torch

    from dspo.core.config import read_section
    from dspo.learners.dspo.diffusion.sampling import make_scheduler, sample_segments
    from dspo.learners.dspo.diffusion.trainer import DiffusionConfig, build_model

    cfg = read_section(DiffusionConfig, REPO / "params.yaml")
    torch.manual_seed(0)
    model = build_model(transition_dim, cfg)
    optim = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    sched = make_scheduler("ddpm", cfg.steps, cfg.beta_schedule, 0.0, cfg.prediction)
    x0 = torch.randn(batch, horizon, transition_dim)
    cond = torch.rand(batch, 2)
    rows = []
    start = time.perf_counter()
    for _ in range(repeats):
        noise, t = torch.randn_like(x0), torch.randint(0, cfg.steps, (batch,))
        loss = (model(sched.add_noise(x0, noise, t), t, cond[:, 0], cond[:, 1], torch.zeros(batch, dtype=torch.bool))
                - noise).pow(2).mean()
        optim.zero_grad()
        loss.backward()
        optim.step()
    rows.append(("training (batch 64)", batch * repeats / (time.perf_counter() - start), "samples/s"))
    model.eval()
    r, z = np.full(n_segments, 0.5, np.float32), np.full(n_segments, 0.5, np.float32)
    for sampler, steps in (("ddpm", cfg.steps), ("ddim", 20)):
        start = time.perf_counter()
        sample_segments(model, r, z, guidance=1.5, sampler=sampler, sampling_steps=steps, noise_steps=cfg.steps,
                        beta_schedule=cfg.beta_schedule, batch_size=n_segments, device="cpu", seed=0,
                        clip_denoised=cfg.clip_denoised, prediction=cfg.prediction)
        rows.append((f"sampling {sampler.upper()}-{steps}, w=1.5 (diffusers)", n_segments / (time.perf_counter() - start),
                     "segments/s"))
    # Plain PyTorch reference: ancestral DDPM with the same betas and the same network calls.
    betas = sched.betas
    alphas, abar = 1 - betas, sched.alphas_cumprod
    start = time.perf_counter()
    with torch.no_grad():
        x = torch.randn(n_segments, horizon, transition_dim)
        keep, drop = torch.zeros(n_segments, dtype=torch.bool), torch.ones(n_segments, dtype=torch.bool)
        rt, zt = torch.as_tensor(r), torch.as_tensor(z)
        for t in range(cfg.steps - 1, -1, -1):
            tt = torch.full((n_segments,), t)
            out_c, out_u = model(x, tt, rt, zt, keep), model(x, tt, rt, zt, drop)
            out = out_u + 1.5 * (out_c - out_u)
            prev = abar[t - 1] if t > 0 else torch.tensor(1.0)
            if cfg.prediction == "epsilon":
                x0_hat = (x - (1 - abar[t]).sqrt() * out) / abar[t].sqrt()
            elif cfg.prediction == "sample":
                x0_hat = out
            else:
                x0_hat = abar[t].sqrt() * x - (1 - abar[t]).sqrt() * out
            if cfg.clip_denoised > 0:
                x0_hat = x0_hat.clamp(-cfg.clip_denoised, cfg.clip_denoised)
            mean = (prev.sqrt() * betas[t] * x0_hat + alphas[t].sqrt() * (1 - prev) * x) / (1 - abar[t])
            var = betas[t] * (1 - prev) / (1 - abar[t])
            x = mean + (var.sqrt() * torch.randn_like(x) if t > 0 else 0)
    rows.append((f"sampling DDPM-{cfg.steps}, w=1.5 (plain PyTorch loop)", n_segments / (time.perf_counter() - start),
                 "segments/s"))
    rows.append(("peak resident memory of this process", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "MiB"))
    return rows


OP_GROUPS = (("convolution", ("conv",)), ("Mish", ("mish",)), ("GroupNorm", ("group_norm",)),
             ("optimizer (AdamW, EMA)", ("optimizer", "lerp", "addcdiv", "addcmul", "sqrt", "_foreach")))


def diffusion_op_shares(batch: int = 64, horizon: int = 32, transition_dim: int = 10, steps: int = 30
                        ) -> list[tuple[str, float]]:
    """Where a diffusion training step's CPU time goes (torch.profiler, self time per op, grouped): which
    part of the U-Net a faster implementation would have to attack."""
    from types import SimpleNamespace

    import torch
    from torch.profiler import profile

    from dspo.core.config import read_section
    from dspo.learners.dspo.diffusion.trainer import DiffusionConfig, DiffusionLearner

    cfg = read_section(DiffusionConfig, REPO / "params.yaml")
    # the stage's own update (loss, clipping, AdamW, EMA); only the segment sampler is replaced by a fixed batch
    learner = DiffusionLearner(SimpleNamespace(transition_dim=transition_dim), cfg, torch.device("cpu"), seed=0)
    x0 = torch.randn(batch, horizon, transition_dim)
    fixed = (x0, torch.rand(batch, 2), torch.randn_like(x0), torch.randint(0, cfg.steps, (batch,)),
             torch.rand(batch) < cfg.cond_dropout)

    def step():
        learner.update(fixed, cfg.ema_start + 1)

    for _ in range(5):
        step()
    with profile() as prof:
        for _ in range(steps):
            step()
    totals = {name: 0.0 for name, _ in OP_GROUPS}
    totals["other"] = 0.0
    for event in prof.key_averages():
        name = event.key.lower()
        group = next((g for g, keys in OP_GROUPS if any(k in name for k in keys)), "other")
        totals[group] += event.self_cpu_time_total
    whole = sum(totals.values())
    return [(group, share / whole) for group, share in sorted(totals.items(), key=lambda kv: -kv[1])]


def baseline_rates(task: str = "BallCircle", updates: int = 200) -> list[tuple[str, float, int]]:
    """Gradient updates/s of each baseline with its default params.yaml config on the task's dataset
    (the committed one when present, else a synthetic table of the same width)."""
    from dspo.core.config import load_params, seed_everything
    from dspo.data.schemas import StepData, read_dataset
    from dspo.learners.baselines import cdt_v as cdt
    from dspo.learners.baselines import rgm
    from dspo.learners.registry import algorithms
    from dspo.learners.transitions import build_offline_data

    spec, params = get_task(task), load_params(REPO / "params.yaml")
    spaces = spec
    path = REPO / "data" / task / "dataset.parquet"
    if path.exists():
        data = read_dataset(path, task=task)
    else:
        rng, n, length = np.random.default_rng(0), 40 * 200, 200
        ep = np.repeat(np.arange(n // length), length)
        data = StepData(task, ep, np.tile(np.arange(length), n // length),
                        rng.standard_normal((n, spaces.obs_dim)).astype(np.float32),
                        rng.uniform(spaces.act_low, spaces.act_high, (n, spaces.act_dim)).astype(np.float32),
                        rng.standard_normal(n).astype(np.float32), np.zeros(n, bool), np.arange(n) % length == length - 1,
                        np.where(ep < 4, "safe_demo", "unlabeled"))
    offline = build_offline_data(data, spaces.act_low, spaces.act_high)
    rows = []
    for algo, alg in algorithms().items():
        if alg.learner is None:
            continue
        cfg = alg.config.from_params(params, alg.section)
        seed_everything(0)
        learner = alg.learner(offline, cfg)
        learner.update(learner.batch(1), 1)  # warm-up
        start = time.perf_counter()
        for step in range(2, updates + 2):
            learner.update(learner.batch(step), step)
        rows.append((algo, updates / (time.perf_counter() - start), cfg.steps))
    cfg = cdt.CDTConfig.from_params(params)
    correction = rgm.RewardCorrection(offline.obs_dim, offline.act_dim, params["rgm"]["hidden"], 1.0)
    cdt_data = cdt.build_cdt_data(data, correction, offline.obs_norm, offline.act_bounds, spec.cost_limit,
                                  cfg.cost_target, cfg.context_len)
    trainer = cdt.CDTTrainer(cdt_data, offline.obs_dim, offline.act_dim, cfg)
    trainer.update(trainer.batch(1), 1)
    start = time.perf_counter()
    for step in range(2, updates // 4 + 2):
        trainer.update(trainer.batch(step), step)
    rows.append(("cdt_v", (updates // 4) / (time.perf_counter() - start), cfg.steps))
    return rows


def stage_times() -> list[dict]:
    path = REPO / TIMINGS_LOG
    if not path.exists():
        return []
    latest = {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        latest[(row["task"], row["stage"])] = row
    return list(latest.values())


@app.command()
def main(steps: int = 2000, episodes: int = 16, skip_metadrive: bool = False) -> None:
    print("## Simulator speed, random actions, one process\n\n| task | family | steps/s |\n|---|---|---|")
    for task in FAMILY_TASKS:
        spec = get_task(task)
        if spec.one_env_per_process and skip_metadrive:
            continue
        rate = in_subprocess(task, steps) if spec.one_env_per_process else random_steps_per_second(task, steps)
        print(f"| {task} | {spec.family} | {rate:,.0f} |")

    print("\n## Collection with a torch policy in the loop (BallCircle, one process)\n")
    print("| envs in lock-step | env steps/s |\n|---|---|")
    for n_envs in (1, 8):
        print(f"| {n_envs} | {lockstep_rate('BallCircle', episodes, n_envs):,.0f} |")

    print("\n## Diffusion model (default params, CPU)\n\n| what | rate | unit |\n|---|---|---|")
    for what, rate, unit in diffusion_rates():
        print(f"| {what} | {rate:,.0f} | {unit} |")

    print("\n## Diffusion training step: share of CPU time per op group (torch.profiler, 30 steps)\n")
    print("| op group | share |\n|---|---|")
    for group, share in diffusion_op_shares():
        print(f"| {group} | {share:.0%} |")

    print("\n## Baselines: gradient updates/s with the default params (BallCircle dataset, CPU)\n")
    print("| algorithm | updates/s | default steps | implied training time (s) |\n|---|---|---|---|")
    for algo, rate, default_steps in baseline_rates():
        print(f"| {algo} | {rate:,.1f} | {default_steps:,} | {default_steps / rate:,.0f} |")

    print("\n## Stage wall time (last `dvc repro` run of each stage)\n\n| task | stage | seconds | finished |")
    print("|---|---|---|---|")
    rows = stage_times()
    if not rows:
        print("| - | no stage timings yet: run `dvc repro` | - | - |")
    for row in rows:
        print(f"| {row['task']} | {row['stage']} | {row['seconds']:.1f} | {row['time']} |")


if __name__ == "__main__":
    app()

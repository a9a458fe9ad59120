"""Roll behavior snapshots out into the offline dataset suite and split it into D^S and D^U.

Episode sources (all recorded in the oracle only):
- every snapshot of every agent, with each Gaussian action-noise level in `collect.noise`;
- mixtures of two agents' final snapshots: at each step the second agent's action is taken
  with probability `mix`, which fills the middle of the cost axis that single agents leave
  empty (measured: costs cluster at <= 20 and ~100 on BallCircle).

Split rule (SPEC "collect"): D^S is `n_safe_demos` safe episodes drawn at random (seeded) from
the safe episodes whose return is at or above the `demo_return_quantile` of safe returns --
*not* the highest returns, which would let return alone separate the demos from every other
safe episode. D^U is the rest (at most `max_unlabeled_episodes`, subsampled seeded). The split
is checked: D^U must hold safe episodes with returns in the demos' range, safe episodes from
every agent that produced a demo, and unsafe episodes whose return exceeds every demo's.
Episode ids are a seeded permutation, so not even the id order reveals the source agent.
"""
from __future__ import annotations

import multiprocessing as mp
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, ClassVar

import numpy as np
import pandas as pd

from dspo.data.behavior import SnapshotPolicy
from pydantic import Field, StrictInt

from dspo.core.cli import cpu_budget
from dspo.core.config import Bool, Float, NonNegFloat, NonNegInt, PosInt, Section, UnitFloat
from dspo.core.errors import ParamError, SplitError
from dspo.core.seeds import COLLECT_SEEDS_PER_JOB, COLLECT_SEEDS_PER_RUN, check_collect_seed
from dspo.data.envs import make_env
from dspo.data.rollout import Episode, rollout_episodes
from dspo.data.quality import QualityConfig
from dspo.data.schemas import DATASET, ORACLE, SAFE_DEMO, UNLABELED, write_table
from dspo.data.tasks import TaskSpec

class CollectConfig(Section):
    """params.yaml `collect`: rollouts of the behavior snapshots and the D^S / D^U split."""

    section: ClassVar[str] = "collect"
    episodes_per_snapshot: PosInt
    noise: tuple[NonNegFloat, ...] = Field(min_length=1)
    mix_pairs: tuple[tuple[str, str], ...]
    mix_probs: tuple[Annotated[Float, Field(gt=0, lt=1)], ...]
    episodes_per_mix: NonNegInt
    n_safe_demos: Annotated[StrictInt, Field(ge=2)]
    demo_return_quantile: UnitFloat
    max_unlabeled_episodes: PosInt
    min_safe_like_demos: NonNegInt
    min_unsafe_above_demos: NonNegInt
    strict: Bool
    n_envs: PosInt
    workers: PosInt
    quality: QualityConfig  # the dataset quality gate (dspo/data/quality.py)


@dataclass(frozen=True)
class RolloutJob:
    agent: str
    cost_limit: float | None
    env_steps: int
    path: str
    noise: float
    mix_path: str | None
    mix_agent: str | None
    mix_prob: float
    seeds: tuple[int, ...]

    @property
    def source_name(self) -> str:
        return self.agent if self.mix_agent is None else f"{self.agent}+{self.mix_agent}"


def plan_jobs(snapshots: list[dict], behavior_dir: Path, cfg: CollectConfig, seed: int) -> list[RolloutJob]:
    """One job per (snapshot, noise) and per (mix pair, mix prob), each with its own seed block."""
    check_collect_seed(seed)
    jobs: list[RolloutJob] = []

    def seeds_for(n: int) -> tuple[int, ...]:
        start = seed * COLLECT_SEEDS_PER_RUN + len(jobs) * COLLECT_SEEDS_PER_JOB
        return tuple(range(start, start + n))

    for snap in snapshots:
        for noise in cfg.noise:
            jobs.append(RolloutJob(snap["agent"], snap["cost_limit"], snap["env_steps"],
                                   str(behavior_dir / snap["path"]), noise, None, None, 0.0,
                                   seeds_for(cfg.episodes_per_snapshot)))
    final = {}
    for snap in snapshots:
        if snap["env_steps"] >= final.get(snap["agent"], {"env_steps": -1})["env_steps"]:
            final[snap["agent"]] = snap
    for first, second in cfg.mix_pairs:
        for name in (first, second):
            if name not in final:
                raise ParamError(f"collect.mix_pairs names agent {name!r}, which the behavior index "
                                 f"{behavior_dir / 'index.json'} does not hold; known agents: {sorted(final)}")
        for prob in cfg.mix_probs:
            if cfg.episodes_per_mix == 0:
                continue
            a, b = final[first], final[second]
            jobs.append(RolloutJob(first, a["cost_limit"], a["env_steps"], str(behavior_dir / a["path"]), 0.0,
                                   str(behavior_dir / b["path"]), second, prob, seeds_for(cfg.episodes_per_mix)))
    return jobs


def run_job(spec: TaskSpec, job: RolloutJob, n_envs: int) -> list[Episode]:
    """Roll out one job's episodes; noise and mixing draw from a generator seeded by the job."""
    import torch

    torch.set_num_threads(1)
    n_envs = 1 if spec.one_env_per_process else n_envs
    envs = [make_env(spec) for _ in range(min(n_envs, len(job.seeds)))]
    obs_dim = envs[0].observation_space.shape[0]
    low, high = envs[0].action_space.low, envs[0].action_space.high
    first = SnapshotPolicy(job.path, spec, obs_dim)
    second = SnapshotPolicy(job.mix_path, spec, obs_dim) if job.mix_path else None
    rng = np.random.default_rng(job.seeds[0])

    def act(obs: np.ndarray) -> np.ndarray:
        action = first(obs)
        if second is not None:
            take_second = rng.random(len(obs)) < job.mix_prob
            action = np.where(take_second[:, None], second(obs), action)
        if job.noise > 0:
            action = action + job.noise * (high - low) / 2.0 * rng.standard_normal(action.shape)
        return action

    try:
        return rollout_episodes(spec, act, job.seeds, envs=envs)
    finally:
        for env in envs:
            env.close()


def _run_job(args):
    return run_job(*args)


def run_jobs(spec: TaskSpec, jobs: list[RolloutJob], cfg: CollectConfig) -> list[list[Episode]]:
    from tqdm import tqdm

    args = [(spec, job, cfg.n_envs) for job in jobs]
    workers = min(cfg.workers, cpu_budget(), len(jobs))  # the job's seed fixes its episodes, not the worker
    if workers == 1:
        return [_run_job(a) for a in tqdm(args, desc="collect rollouts", unit="job")]
    with mp.get_context("spawn").Pool(workers) as pool:
        return list(tqdm(pool.imap(_run_job, args, chunksize=1), total=len(args), desc="collect rollouts", unit="job"))


def episode_frame(spec: TaskSpec, jobs: list[RolloutJob], results: list[list[Episode]]) -> pd.DataFrame:
    """One row per episode with its return, cost and source (the oracle's per-episode view)."""
    rows = []
    for job, episodes in zip(jobs, results):
        for ep in episodes:
            rows.append({
                "reward_return": ep.reward_return, "cost_return": ep.cost_return, "length": ep.length,
                "terminated": bool(ep.terminated[-1]),
                "is_safe": ep.cost_return <= spec.cost_limit, "source_agent": job.source_name,
                "source_cost_limit": -1.0 if job.cost_limit is None else float(job.cost_limit),
                "source_checkpoint": job.env_steps, "source_noise": job.noise, "source_mix": job.mix_prob,
            })
    return pd.DataFrame(rows)


def split_episodes(episodes: pd.DataFrame, cfg: CollectConfig, seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Return (demo row indices, unlabeled row indices, problems found) for the episode frame."""
    rng = np.random.default_rng(seed)
    safe = episodes[episodes["is_safe"]]
    if len(safe) < cfg.n_safe_demos:
        raise SplitError(f"only {len(safe)} of {len(episodes)} episodes are safe (cost <= kappa) but "
                         f"collect.n_safe_demos={cfg.n_safe_demos}; lower n_safe_demos or collect more safe episodes "
                         f"(more Lagrangian agents / episodes_per_snapshot)")
    threshold = float(np.quantile(safe["reward_return"], cfg.demo_return_quantile))
    candidates = safe.index[safe["reward_return"] >= threshold].to_numpy()
    if len(candidates) < cfg.n_safe_demos:
        raise SplitError(f"only {len(candidates)} safe episodes have return >= the {cfg.demo_return_quantile:.2f} "
                         f"quantile ({threshold:.1f}); lower collect.demo_return_quantile or n_safe_demos")
    demos = np.sort(rng.choice(candidates, size=cfg.n_safe_demos, replace=False))
    rest = np.setdiff1d(episodes.index.to_numpy(), demos)
    if len(rest) > cfg.max_unlabeled_episodes:
        rest = np.sort(rng.choice(rest, size=cfg.max_unlabeled_episodes, replace=False))
    return demos, rest, check_split(episodes, demos, rest, cfg)


def check_split(episodes: pd.DataFrame, demos: np.ndarray, rest: np.ndarray, cfg: CollectConfig) -> list[str]:
    """List what the split lacks (empty when it has everything the discriminator study needs)."""
    d, u = episodes.loc[demos], episodes.loc[rest]
    lo, hi = d["reward_return"].min(), d["reward_return"].max()
    problems = []
    safe_u = u[u["is_safe"]]
    like = safe_u[(safe_u["reward_return"] >= lo) & (safe_u["reward_return"] <= hi)]
    if len(like) < cfg.min_safe_like_demos:
        problems.append(f"D^U has {len(like)} safe episodes with returns in the demos' range "
                        f"[{lo:.1f}, {hi:.1f}], need >= {cfg.min_safe_like_demos}")
    for agent in sorted(set(d["source_agent"])):
        if not (safe_u["source_agent"] == agent).any():
            problems.append(f"D^U has no safe episode from demo agent {agent!r}")
    above = u[(~u["is_safe"]) & (u["reward_return"] > hi)]
    if len(above) < cfg.min_unsafe_above_demos:
        problems.append(f"D^U has {len(above)} unsafe episodes with return above the best demo ({hi:.1f}), "
                        f"need >= {cfg.min_unsafe_above_demos}")
    if len(u) == 0:
        problems.append("D^U is empty")
    return problems


def write_tables(spec: TaskSpec, all_episodes: list[Episode], frame: pd.DataFrame, demos: np.ndarray,
                 rest: np.ndarray, seed: int, dataset_path: Path, oracle_path: Path) -> pd.DataFrame:
    """Write dataset.parquet (learner view) and oracle.parquet; return the per-episode frame kept."""
    keep = np.concatenate([demos, rest])
    ids = np.random.default_rng(seed + 1).permutation(len(keep))  # ids reveal nothing about the source
    kept = frame.loc[keep].copy()
    kept["episode_id"] = ids
    kept["split"] = [SAFE_DEMO] * len(demos) + [UNLABELED] * len(rest)
    kept = kept.sort_values("episode_id")
    eps = [all_episodes[i] for i in kept.index]
    lengths = np.array([ep.length for ep in eps])
    rep = lambda col: np.repeat(kept[col].to_numpy(), lengths)  # noqa: E731
    obs_dim, act_dim = eps[0].obs.shape[1], eps[0].actions.shape[1]
    steps = np.concatenate([np.arange(n) for n in lengths])
    write_table(DATASET, {
        "episode_id": rep("episode_id"), "step": steps,
        "obs": np.concatenate([ep.obs for ep in eps]), "action": np.concatenate([ep.actions for ep in eps]),
        "reward": np.concatenate([ep.rewards for ep in eps]),
        "terminated": np.concatenate([ep.terminated for ep in eps]),
        "truncated": np.concatenate([ep.truncated for ep in eps]), "split": rep("split"),
    }, dataset_path, task=spec.name, obs_dim=obs_dim, act_dim=act_dim)
    write_table(ORACLE, {
        "episode_id": rep("episode_id"), "step": steps, "cost": np.concatenate([ep.costs for ep in eps]),
        **{col: rep(col) for col in ("cost_return", "is_safe", "source_agent", "source_cost_limit",
                                     "source_checkpoint", "source_noise", "source_mix")},
    }, oracle_path, task=spec.name)
    return kept.reset_index(drop=True)


def dataset_summary(spec: TaskSpec, kept: pd.DataFrame) -> dict:
    def split_stats(frame: pd.DataFrame) -> dict:
        return {
            "episodes": int(len(frame)), "steps": int(frame["length"].sum()),
            "safe_fraction": float(frame["is_safe"].mean()),
            "return_min": float(frame["reward_return"].min()), "return_max": float(frame["reward_return"].max()),
            "return_mean": float(frame["reward_return"].mean()),
            "cost_min": float(frame["cost_return"].min()), "cost_max": float(frame["cost_return"].max()),
            "cost_mean": float(frame["cost_return"].mean()),
        }

    demos = kept[kept["split"] == SAFE_DEMO]
    unl = kept[kept["split"] == UNLABELED]
    best_demo = demos["reward_return"].max()
    return {
        "task": spec.name, "cost_limit": spec.cost_limit, "episodes": int(len(kept)),
        "steps": int(kept["length"].sum()), "safe_fraction_unlabeled": float(unl["is_safe"].mean()),
        "safe_demo": split_stats(demos), "unlabeled": split_stats(unl),
        "unlabeled_unsafe_above_best_demo": int(((~unl["is_safe"]) & (unl["reward_return"] > best_demo)).sum()),
        "unlabeled_safe_in_demo_return_range": int((unl["is_safe"] & (unl["reward_return"] >= demos["reward_return"].min())
                                                    & (unl["reward_return"] <= best_demo)).sum()),
        "behavior_sources": int(kept["source_agent"].nunique()),
    }


def plot_dataset(spec: TaskSpec, kept: pd.DataFrame, path: Path) -> None:
    """Episode return vs cost, coloured by split and true safety, with kappa drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dspo.core.artifacts import save_figure

    fig, ax = plt.subplots(figsize=(7, 5))
    unl = kept[kept["split"] == UNLABELED]
    for safe, color, label in ((True, "tab:green", "D^U safe"), (False, "tab:red", "D^U unsafe")):
        part = unl[unl["is_safe"] == safe]
        ax.scatter(part["cost_return"], part["reward_return"], s=12, alpha=0.5, c=color, label=f"{label} ({len(part)})")
    demos = kept[kept["split"] == SAFE_DEMO]
    ax.scatter(demos["cost_return"], demos["reward_return"], s=70, marker="*", c="gold", edgecolors="k",
               label=f"D^S safe demos ({len(demos)})", zorder=3)
    ax.axvline(spec.cost_limit, color="k", ls="--", lw=1, label=f"cost limit κ = {spec.cost_limit:g}")
    ax.set_xlabel("episode cost return (oracle)")
    ax.set_ylabel("episode reward return")
    ax.set_title(f"{spec.name}: offline dataset, {len(kept)} episodes")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    save_figure(fig, path)

"""Online behavior agents (FSRL) whose snapshots generate the offline dataset suite (paper App. C.3).

A population of PPO-Lagrangian agents at several cost limits plus a reward-only PPO agent is
trained, each in its own process, and snapshotted at evenly spaced points of training. Early
snapshots give low-return episodes, late reward-only ones unsafe high-return episodes, and
Lagrangian agents at intermediate limits fill the middle of the cost axis -- together they span
the reward-cost plane the way DSRL built its datasets.

On MetaDrive, where PPO needs ~1M steps per agent to drive at all, agents of kind `idm` are
MetaDrive's scripted IDM driver at target speeds (`dspo/data/envs/metadrive.py`): slow drivers stay
under DSRL's 10 km/h speed cost, fast ones earn more return and more cost. They need no training; each
is one snapshot holding its target speed.

A snapshot stores the actor network only (fsrl's policy object holds a local closure and cannot
be pickled) with the metadata needed to act: the task, observation size, and action bounds.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import warnings
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import torch

from dspo.core.artifacts import save_torch, write_json
from pydantic import BaseModel, ConfigDict, Field, model_validator

from dspo.core.cli import cpu_budget
from dspo.core.config import NonNegFloat, PosFloat, PosInt, Section
from dspo.core.errors import CheckpointMismatchError, ParamError
from dspo.data.envs import make_env, spaces_of
from dspo.data.rollout import check_obs_dim
from dspo.data.tasks import METADRIVE, TaskSpec


class AgentSpec(BaseModel):
    """One behavior agent: PPO-Lagrangian at `cost_limit` (reward-only PPO when it is null), or, with
    `kind: idm`, MetaDrive's scripted IDM driver at `target_speed_kmh` (no training, MetaDrive only)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    kind: Literal["ppo", "idm"] = "ppo"
    cost_limit: NonNegFloat | None = None
    target_speed_kmh: PosFloat | None = None

    @model_validator(mode="after")
    def _kind_fields(self) -> "AgentSpec":
        if self.kind == "idm" and (self.target_speed_kmh is None or self.cost_limit is not None):
            raise ValueError(f"agent {self.name!r}: kind idm needs target_speed_kmh and no cost_limit")
        if self.kind == "ppo" and self.target_speed_kmh is not None:
            raise ValueError(f"agent {self.name!r}: target_speed_kmh is for kind idm; PPO agents take cost_limit")
        return self


class BehaviorConfig(Section):
    """params.yaml `behavior`: the FSRL behavior-agent population."""

    section: ClassVar[str] = "behavior"
    agents: tuple[AgentSpec, ...] = Field(min_length=1)
    env_steps: PosInt
    snapshots: PosInt
    hidden: tuple[PosInt, ...] = Field(min_length=1)
    lr: PosFloat
    episode_per_collect: PosInt
    train_envs: PosInt
    workers: PosInt

    @model_validator(mode="after")
    def _consistent(self) -> "BehaviorConfig":
        if len({a.name for a in self.agents}) != len(self.agents):
            raise ValueError("agent names must be unique")
        if self.env_steps < self.snapshots:
            raise ValueError("env_steps must be >= snapshots")
        return self


def snapshot_path(out_dir: Path, agent: str, env_steps: int) -> Path:
    return out_dir / agent / f"step_{env_steps:08d}.pt"


def train_agent(spec: TaskSpec, agent: AgentSpec, cfg: BehaviorConfig, seed: int, out_dir: Path) -> list[dict]:
    """Train one agent, saving `cfg.snapshots` evenly spaced snapshots; return their index rows."""
    warnings.filterwarnings("ignore")
    from fsrl.agent import PPOLagAgent
    from fsrl.utils import BaseLogger
    from tianshou.env import DummyVectorEnv

    torch.set_num_threads(1)
    env = make_env(spec)  # fsrl reads the spaces from it; closed before the training envs exist
    spaces = spaces_of(env)
    agent_impl = PPOLagAgent(
        env, BaseLogger(), cost_limit=agent.cost_limit if agent.cost_limit is not None else 0.0,
        device="cpu", thread=1, seed=seed, hidden_sizes=cfg.hidden, lr=cfg.lr,
        use_lagrangian=agent.cost_limit is not None,
    )
    env.close()
    n_train_envs = 1 if spec.one_env_per_process else cfg.train_envs
    train_envs = DummyVectorEnv([lambda: make_env(spec) for _ in range(n_train_envs)])
    train_envs.seed([seed * 100 + i for i in range(n_train_envs)])
    steps_per_snapshot = cfg.env_steps // cfg.snapshots
    rows = []
    for k in range(1, cfg.snapshots + 1):
        agent_impl.learn(train_envs, None, epoch=1, episode_per_collect=cfg.episode_per_collect,
                         step_per_epoch=steps_per_snapshot, save_ckpt=False, verbose=False,
                         show_progress=False, reward_threshold=float("inf"))
        env_steps = k * steps_per_snapshot
        path = snapshot_path(out_dir, agent.name, env_steps)
        save_torch({
            "kind": "fsrl_actor", "task": spec.name, "agent": agent.name, "cost_limit": agent.cost_limit,
            "env_steps": env_steps, "obs_dim": spaces.obs_dim,
            "act_low": spaces.act_low.tolist(), "act_high": spaces.act_high.tolist(),
            "actor": agent_impl.policy.actor.cpu(),
        }, path)
        rows.append({"agent": agent.name, "cost_limit": agent.cost_limit, "env_steps": env_steps,
                     "path": str(path.relative_to(out_dir))})
        print(f"[behavior] {agent.name}: snapshot at {env_steps} env steps", flush=True)
    train_envs.close()
    return rows


def scripted_agent(spec: TaskSpec, agent: AgentSpec, out_dir: Path) -> list[dict]:
    """An IDM driver's one snapshot: its target speed (nothing is trained)."""
    env = make_env(spec)
    spaces = spaces_of(env)
    env.close()
    path = snapshot_path(out_dir, agent.name, 0)
    save_torch({"kind": "idm_driver", "task": spec.name, "agent": agent.name, "cost_limit": None, "env_steps": 0,
                "obs_dim": spaces.obs_dim, "act_low": spaces.act_low.tolist(), "act_high": spaces.act_high.tolist(),
                "target_speed_kmh": agent.target_speed_kmh}, path)
    print(f"[behavior] {agent.name}: IDM driver at {agent.target_speed_kmh:g} km/h", flush=True)
    return [{"agent": agent.name, "cost_limit": None, "env_steps": 0, "path": str(path.relative_to(out_dir))}]


def check_agents(spec: TaskSpec, cfg: BehaviorConfig) -> None:
    """Refuse, before any training, agents the task cannot run."""
    scripted = [a.name for a in cfg.agents if a.kind == "idm"]
    if scripted and spec.family != METADRIVE:
        raise ParamError(f"behavior.agents {scripted}: kind idm drives MetaDrive tasks only, not {spec.name}; "
                         f"give them kind ppo and a cost_limit")


def _train_agent_job(args):
    spec, agent, _cfg, _seed, out_dir = args
    if agent.kind == "idm":
        return scripted_agent(spec, agent, out_dir)
    return train_agent(*args)


def train_population(spec: TaskSpec, cfg: BehaviorConfig, seed: int, out_dir: Path) -> list[dict]:
    """Train every agent (in `cfg.workers` processes, at most the cpu budget) and write `index.json`.

    An agent's seed depends on its index only, so the number of processes never changes the result.
    """
    out_dir = Path(out_dir)
    check_agents(spec, cfg)
    jobs = [(spec, agent, cfg, seed * 1000 + i, out_dir) for i, agent in enumerate(cfg.agents)]
    workers = min(cfg.workers, cpu_budget(), len(jobs))
    if workers == 1:
        results = [_train_agent_job(job) for job in jobs]
    else:
        with mp.get_context("spawn").Pool(workers) as pool:
            results = pool.map(_train_agent_job, jobs, chunksize=1)
    rows = [row for agent_rows in results for row in agent_rows]
    write_json({"task": spec.name, "snapshots": rows}, out_dir / "index.json")
    return rows


class SnapshotPolicy:
    """A behavior snapshot as a batched numpy act function: the actor's mean action (or the IDM driver's
    action), mapped to the bounds."""

    def __init__(self, path: str | os.PathLike, spec: TaskSpec, env_obs_dim: int):
        ckpt = torch.load(path, weights_only=False, map_location="cpu")
        if ckpt.get("kind") not in ("fsrl_actor", "idm_driver"):
            raise CheckpointMismatchError(f"{path}: not a behavior snapshot (kind={ckpt.get('kind')!r})")
        check_obs_dim(ckpt["obs_dim"], env_obs_dim, f"behavior snapshot {path}", spec.name)
        if ckpt["kind"] == "idm_driver":
            from dspo.data.envs.metadrive import IDMDriver

            self.driver, self.actor = IDMDriver(ckpt["target_speed_kmh"]), None
        else:
            self.driver, self.actor = None, ckpt["actor"].eval()
        self.low = np.asarray(ckpt["act_low"], dtype=np.float32)
        self.high = np.asarray(ckpt["act_high"], dtype=np.float32)

    @torch.no_grad()
    def __call__(self, obs: np.ndarray) -> np.ndarray:
        if self.driver is not None:
            return self.low + (self.high - self.low) * (self.driver(obs) + 1.0) / 2.0
        (mu, _sigma), _ = self.actor(torch.as_tensor(obs, dtype=torch.float32))
        unit = np.clip(mu.numpy(), -1.0, 1.0)  # fsrl's map_action: clip, then scale to the bounds
        return self.low + (self.high - self.low) * (unit + 1.0) / 2.0

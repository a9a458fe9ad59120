"""Probe a behavior budget before paying for a task's data: train one behavior agent, roll out its snapshots.

    python scripts/behavior_probe.py --task DroneCircle --agent ppo_reward --env-steps 400000
    python scripts/behavior_probe.py --task AntRun --agent ppol_k20 --env-steps 300000 --set behavior.lr=0.0003

The agent is one of params.yaml `behavior.agents` (its cost limit, the section's widths and learning
rate, `--set` on top, as `suite.overrides` would apply them). Per snapshot it prints what the dataset
quality gate (`dspo/data/quality.py`) will look at: DSRL-normalized return (mean, best), normalized
cost, episode length, the share of episodes the simulator ended (crash / fall), the share that is
safe. Use it to choose a task's `suite.overrides` (behavior.env_steps, behavior.agents) on evidence;
the data seed's agents are trained by the `train_behavior` stage, never by this script. Rollout
seeds are the probe's own (0, 1, ...), apart from the evaluation blocks. Writes `--json` if given.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import List, Optional

import numpy as np
import typer

from dspo.core.artifacts import write_json
from dspo.core.cli import stage
from dspo.core.config import load_params
from dspo.core.errors import ParamError
from dspo.data.behavior import BehaviorConfig, SnapshotPolicy, train_agent
from dspo.data.rollout import rollout_episodes
from dspo.data.tasks import get_task
from dspo.suite.plan import parse_sets, task_params

REPO = Path(__file__).resolve().parents[1]
app = typer.Typer(add_completion=False)


def snapshot_rows(spec, snapshots: list[dict], out_dir: Path, episodes: int, n_envs: int) -> list[dict]:
    rows = []
    for snap in snapshots:
        policy = SnapshotPolicy(out_dir / snap["path"], spec, spec.obs_dim)
        eps = rollout_episodes(spec, policy, range(episodes), n_envs=n_envs, desc=f"{snap['env_steps']} steps")
        ret = np.array([spec.normalized_reward(e.reward_return) for e in eps])
        cost = np.array([spec.normalized_cost(e.cost_return) for e in eps])
        rows.append({"env_steps": snap["env_steps"], "return_mean": float(ret.mean()), "return_max": float(ret.max()),
                     "cost_mean": float(cost.mean()), "length_mean": float(np.mean([e.length for e in eps])),
                     "terminated_share": float(np.mean([bool(e.terminated[-1]) for e in eps])),
                     "safe_share": float(np.mean([e.cost_return <= spec.cost_limit for e in eps]))})
    return rows


@app.command()
@stage
def main(task: str = typer.Option(..., help="task name from the registry"),
         agent: str = typer.Option(..., help="a name from params.yaml behavior.agents"),
         env_steps: Optional[int] = typer.Option(None, help="online env steps (default: behavior.env_steps)"),
         snapshots: Optional[int] = typer.Option(None, help="snapshots along training (default: behavior.snapshots)"),
         episodes: int = typer.Option(10, help="rollout episodes per snapshot"),
         seed: int = typer.Option(0, help="the agent's training seed"),
         set_: Optional[List[str]] = typer.Option(None, "--set", help="section.key=value on top of params.yaml"),
         params: Path = typer.Option(REPO / "params.yaml", help="params file"),
         json_out: Optional[Path] = typer.Option(None, "--json", help="also write the rows here")) -> None:
    spec = get_task(task)
    overrides = parse_sets(set_)
    p = task_params(load_params(params), task, overrides)
    if env_steps is not None:
        p["behavior"]["env_steps"] = env_steps
    if snapshots is not None:
        p["behavior"]["snapshots"] = snapshots
    cfg = BehaviorConfig.from_params(p, source=params)
    chosen = [a for a in cfg.agents if a.name == agent]
    if not chosen:
        raise ParamError(f"--agent {agent!r} is not in behavior.agents {[a.name for a in cfg.agents]}")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dspo-probe-") as tmp:
        snaps = train_agent(spec, chosen[0], cfg, seed, Path(tmp))
        train_s = time.perf_counter() - start
        rows = snapshot_rows(spec, snaps, Path(tmp), episodes, n_envs=min(episodes, 8))
    typer.echo(f"\n{task}, agent {agent} (cost limit {chosen[0].cost_limit}), {cfg.env_steps} env steps "
               f"trained in {train_s:.0f} s; {episodes} episodes per snapshot (normalized by DSRL's R_min/R_max, kappa)\n")
    typer.echo("| env steps | return mean | return max | cost mean | length | terminated | safe |\n|---|---|---|---|---|---|---|")
    for r in rows:
        typer.echo(f"| {r['env_steps']} | {r['return_mean']:.3f} | {r['return_max']:.3f} | {r['cost_mean']:.2f} | "
                   f"{r['length_mean']:.0f} | {r['terminated_share']:.2f} | {r['safe_share']:.2f} |")
    if json_out is not None:
        write_json({"task": task, "agent": agent, "overrides": overrides, "env_steps": cfg.env_steps,
                    "train_seconds": round(train_s, 1), "episodes": episodes, "rows": rows}, json_out)


if __name__ == "__main__":
    app()

"""Probe MetaDrive's bundled PPO expert as a would-be behavior agent, before writing code around it.

    python scripts/metadrive_expert_probe.py --task MetaDrive-hardsparse --episodes 4 \
        --speed-cap none --speed-cap 20 --speed-cap 12 --json reports/probes/MetaDrive-hardsparse-expert.json

Training PPO behavior agents on MetaDrive needs ~1M env steps per agent here (README "Status"); the
wheel ships a pretrained expert (`metadrive/examples/ppo_expert/`), which would make the data cheap if
it drove the task's map. It reads its own 275-dim observation from the ego vehicle, so it can only
act inside the process that owns the env. A speed cap (km/h) turns its throttle into a
proportional controller above the cap: that is how slow-and-safe vs fast-and-costly agents would be
made from one expert (DSRL's cost charges speed above 10 km/h). Per cap the probe prints what the
dataset quality gate looks at, and how episodes end (arrival, crash, out of road) and on which lane.
Rollout seeds are the probe's own (0, 1, ...), apart from the evaluation blocks; `--stochastic`
samples the expert's Gaussian (numpy's global generator, seeded here) instead of its mean.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import numpy as np
import typer

from dspo.core.artifacts import write_json
from dspo.core.cli import stage
from dspo.core.errors import ParamError
from dspo.data.envs import make_env
from dspo.data.envs.metadrive import episode_end
from dspo.data.tasks import METADRIVE, get_task

app = typer.Typer(add_completion=False)


def parse_cap(text: str) -> float | None:
    if text.lower() == "none":
        return None
    try:
        cap = float(text)
    except ValueError:
        raise ParamError(f"--speed-cap {text}: a cap is a speed in km/h > 0, or 'none'") from None
    if cap <= 0:
        raise ParamError(f"--speed-cap {text}: a cap is a speed in km/h > 0, or 'none'")
    return cap


def expert_episode(env, spec, seed: int, cap: float | None, gain: float, stochastic: bool) -> dict:
    """One episode driven by the expert (speed-capped); what the quality gate and a reader need."""
    from metadrive.examples.ppo_expert.numpy_expert import expert

    env.reset(seed=seed)
    vehicle = lambda: env.unwrapped._env.agent  # noqa: E731 -- the wrapper keeps MetaDrive's env private
    ret = cost = 0.0
    steps = 0
    while True:
        v = vehicle()
        action = np.clip(expert(v, deterministic=not stochastic), -1.0, 1.0)
        if cap is not None:
            action[1] = min(action[1], gain * (cap - v.speed_km_h))
        _, reward, terminated, truncated, info = env.step(action)
        ret, cost, steps = ret + reward, cost + info["cost"], steps + 1
        if terminated or truncated:
            break
    return {"seed": seed, "return": spec.normalized_reward(ret), "cost": spec.normalized_cost(cost),
            "length": steps, "end": episode_end(info), "lane": str(vehicle().lane_index)}


@app.command()
@stage
def main(task: str = typer.Option("MetaDrive-hardsparse", help="a MetaDrive task of the registry"),
         episodes: int = typer.Option(4, min=1, help="episodes per speed cap"),
         speed_cap: Optional[List[str]] = typer.Option(None, help="km/h, or 'none' (repeat); default: none 20 12"),
         gain: float = typer.Option(0.1, min=0.0, help="throttle per km/h above the cap"),
         stochastic: bool = typer.Option(False, help="sample the expert's Gaussian instead of its mean"),
         json_out: Optional[Path] = typer.Option(None, "--json", help="write the rows here")) -> None:
    spec = get_task(task)
    if spec.family != METADRIVE:
        raise ParamError(f"--task {task}: the bundled expert drives MetaDrive tasks only")
    caps = [parse_cap(c) for c in (speed_cap or ["none", "20", "12"])]
    np.random.seed(0)  # the numpy expert samples from the global generator
    env = make_env(spec)
    rows = []
    try:
        for cap in caps:
            eps = [expert_episode(env, spec, s, cap, gain, stochastic) for s in range(episodes)]
            ends = [e["end"] for e in eps]
            row = {"speed_cap_kmh": cap, "return_mean": float(np.mean([e["return"] for e in eps])),
                   "return_max": float(np.max([e["return"] for e in eps])),
                   "cost_mean": float(np.mean([e["cost"] for e in eps])),
                   "length_mean": float(np.mean([e["length"] for e in eps])),
                   "end_shares": {k: ends.count(k) / len(ends) for k in sorted(set(ends))},
                   "safe_share": float(np.mean([e["cost"] <= 1.0 for e in eps])), "episodes": eps}
            rows.append(row)
            typer.echo(f"cap {cap}: return {row['return_mean']:.3f} (best {row['return_max']:.3f}), cost "
                       f"{row['cost_mean']:.2f}, length {row['length_mean']:.0f}, ends {row['end_shares']}, "
                       f"last lanes {sorted({e['lane'] for e in eps})}")
    finally:
        env.close()
    if json_out:
        write_json({"task": task, "gain": gain, "stochastic": stochastic, "rows": rows}, json_out)


if __name__ == "__main__":
    app()

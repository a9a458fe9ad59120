"""Which MetaDrive maps can be driven at all: an IDM driver on each scenario seed, traffic off.

    python scripts/metadrive_map_probe.py --task MetaDrive-hardsparse --first 200 --count 12 \
        --json reports/probes/MetaDrive-hardsparse-maps.json

Every behavior agent -- PPO, MetaDrive's bundled expert, the IDM driver -- ended DSRL's hard map
(start seed 200) at the same place on metadrive 0.4.3. This probe tells a map defect from a weak
driver: with no traffic, MetaDrive's IDM lane follower either finishes the route (the map is
drivable; its return is about the route's R_max) or ends "out of road" by touching a continuous line
it cannot avoid (at IDM's own 30 km/h; faster, it cuts curves). Per scenario it prints the return (raw and DSRL-normalized), the length, how the
episode ended and, for an out-of-road end, the lane and the line touched. The task registry's map
seeds (dspo/data/tasks.py METADRIVE_MAPS) were chosen with it.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import typer

from dspo.core.artifacts import write_json
from dspo.core.cli import stage
from dspo.core.errors import ParamError
from dspo.data.envs import make_env
from dspo.data.envs.metadrive import IDMDriver, episode_end
from dspo.data.tasks import METADRIVE, get_task

app = typer.Typer(add_completion=False)


def drive_scenario(spec, scenario: int, speed_kmh: float, traffic: float) -> dict:
    """One IDM episode on map `scenario` (its own env: a map is fixed when the engine starts)."""
    one_map = {**spec.env_kwargs, "start_seed": scenario, "num_scenarios": 1, "traffic_density": traffic}
    env = make_env(dataclasses.replace(spec, env_kwargs=one_map))
    try:
        obs, _ = env.reset(seed=0)
        driver = IDMDriver(speed_kmh)
        ret = cost = 0.0
        steps = 0
        while True:
            obs, reward, terminated, truncated, info = env.step(driver(obs[None, :])[0])
            ret, cost, steps = ret + reward, cost + info["cost"], steps + 1
            if terminated or truncated:
                break
        ego = env._env.agent  # the wrapper keeps MetaDrive's env private
        end = episode_end(info)
        return {"scenario": scenario, "return": ret, "normalized_return": spec.normalized_reward(ret),
                "cost": cost, "length": steps, "end": end, "lane": str(ego.lane_index),
                "touching": sorted(getattr(ego, "contact_results", set()) or []),
                # a continuous line touched while centred in the lane crosses that lane: a map defect
                "lateral_offset_m": float(ego.lane.local_coordinates(ego.position)[1]), "lane_width_m": float(ego.lane.width)}
    finally:
        env.close()


@app.command()
@stage
def main(task: str = typer.Option("MetaDrive-hardsparse", help="a MetaDrive task of the registry"),
         first: Optional[int] = typer.Option(None, help="first scenario seed (default: the task's own)"),
         count: int = typer.Option(8, min=1, help="scenario seeds to drive"),
         speed: float = typer.Option(30.0, help="IDM target speed, km/h (30: IDM's own, the traffic cars')"),
         traffic: float = typer.Option(0.0, min=0.0, help="traffic density (0: a crash cannot hide the map)"),
         json_out: Optional[Path] = typer.Option(None, "--json", help="write the rows here")) -> None:
    spec = get_task(task)
    if spec.family != METADRIVE:
        raise ParamError(f"--task {task}: the map probe drives MetaDrive tasks only")
    if not speed > 0:
        raise ParamError(f"--speed {speed}: a target speed in km/h > 0")
    start = int(spec.env_kwargs["start_seed"]) if first is None else first
    rows = []
    for scenario in range(start, start + count):
        row = drive_scenario(spec, scenario, speed, traffic)
        rows.append(row)
        typer.echo(f"scenario {scenario}: return {row['return']:.1f} (normalized {row['normalized_return']:.3f}), "
                   f"{row['length']} steps, {row['end']}" + (f" on {row['lane']} {row['lateral_offset_m']:+.2f} m off its "
                                                            f"centre, touching {row['touching']}"
                                                            if row["end"] == "out_of_road" else ""))
    drivable = [r["scenario"] for r in rows if r["end"] == "arrive"]
    typer.echo(f"drivable: {drivable}")
    if json_out:
        write_json({"task": task, "speed_kmh": speed, "traffic_density": traffic,
                    "registry_start_seed": int(spec.env_kwargs["start_seed"]),
                    "r_max": spec.reward_max, "drivable": drivable, "rows": rows}, json_out)


if __name__ == "__main__":
    app()

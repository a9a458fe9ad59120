"""Fan-out benchmark: the same small suite run serially, with the local executor and with the Ray executor, in one run.

    python benchmarks/suite_fanout.py [--tasks BallCircle --tasks BallRun] [--scale 0.05] [--learner-seeds 2]

Fresh local clones of HEAD (own DVC caches: nothing is reused between the modes) run `scripts/suite.py`
with the committed params scaled down (`--scale` x every step budget, one baseline seed,
`--learner-seeds` learner seeds): `--jobs 1` (one unit at a time, all cores to it), `--jobs <cores>`
(cores split between units), and `--executor ray` with a Ray cluster of this machine's cores started
by the suite (units clone a bare git remote and share only an empty DVC remote; Ray's start-up and
the pushes and pulls are in its time). Prints a table and writes benchmarks/results/suite_fanout.json.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List

import typer
import yaml

REPO = Path(__file__).resolve().parents[1]
STEP_KEYS = ("steps", "train_steps", "env_steps", "disc_steps", "bc_steps", "warmup_steps")
app = typer.Typer(add_completion=False)


def scaled_params(params: dict, scale: float, tasks: list[str], jobs: int, learner_seeds: int) -> dict:
    """Every step budget x `scale` (at least 10 updates), `learner_seeds` learner seeds, 1 baseline seed."""
    out = yaml.safe_load(yaml.safe_dump(params))
    for name, section in out.items():
        if isinstance(section, dict):
            for key in STEP_KEYS:
                if name == "diffusion" and key == "steps":
                    continue  # the number of noise levels, not a training budget
                if isinstance(section.get(key), int) and not isinstance(section.get(key), bool):
                    section[key] = max(10, int(section[key] * scale))
            steps = section.get("steps", section.get("train_steps"))
            for key in ("log_every", "eval_every"):  # keep a few curve / model-selection rows
                if key in section and isinstance(steps, int):
                    section[key] = max(1, min(section[key], steps // 4))
    out["diffusion"]["ema_start"] = min(out["diffusion"]["ema_start"], out["diffusion"]["train_steps"] // 2)
    out["diffusion"]["save_every"] = out["diffusion"]["train_steps"]
    out["cql"]["bc_steps"] = min(out["cql"]["bc_steps"], out["cql"]["steps"] // 2)
    out["cdt_v"]["warmup_steps"] = min(out["cdt_v"]["warmup_steps"], out["cdt_v"]["steps"] // 2)
    out["seeds"] = {"data": 0, "learner": list(range(learner_seeds)), "baseline": [0]}
    out["eval"].update({"tuning_episodes": 5, "test_episodes": 10})
    out["collect"]["strict"] = False  # small behavior budgets may miss the split rules: warn, go on
    out["suite"] = {"tasks": tasks, "jobs": jobs, "units": params["suite"]["units"], "overrides": {}}
    return out


def run_mode(workdir: Path, params: dict, jobs: int, executor: str, cores: int) -> float:
    clone = workdir / f"{executor}-jobs{jobs}"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(["git", "-c", "user.name=bench", "-c", "user.email=bench@local", "commit", "-qam", "bench params"],
                   cwd=clone, check=True)
    args = ["--jobs", str(jobs), "--cores", str(cores), "--executor", executor]
    if executor == "ray":  # the units clone this bare remote and share only an empty DVC remote
        origin = workdir / f"{clone.name}.git"
        subprocess.run(["git", "clone", "-q", "--bare", str(clone), str(origin)], check=True)
        subprocess.run(["git", "remote", "set-url", "origin", str(origin)], cwd=clone, check=True)
        args += ["--address", "local", "--dvc-remote", str(workdir / f"{clone.name}-dvc-remote")]
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "scripts/suite.py", *args], cwd=clone, text=True, capture_output=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"suite {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return wall


@app.command()
def main(tasks: List[str] = typer.Option(["BallCircle", "BallRun"], help="suite tasks"),
         scale: float = typer.Option(0.05, help="factor on every step budget of params.yaml"),
         learner_seeds: int = typer.Option(1, help="learner seeds per task"),
         cores: int = typer.Option(os.cpu_count() or 1, help="cores to split in the parallel mode")) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    rows = []
    with tempfile.TemporaryDirectory(prefix="dspo-fanout-") as tmp:
        for mode, jobs, executor in (("serial", 1, "local"), ("local fan-out", cores, "local"),
                                     ("ray (local cluster)", cores, "ray")):
            wall = run_mode(Path(tmp), scaled_params(params, scale, list(tasks), jobs, learner_seeds), jobs,
                            executor, cores)
            rows.append({"mode": mode, "executor": executor, "jobs": jobs,
                         "threads_per_job": max(1, cores // jobs), "wall_seconds": round(wall, 1)})
            print(f"{rows[-1]['mode']}: {wall:.0f} s", flush=True)
    for r in rows:
        r["speedup_vs_serial"] = round(rows[0]["wall_seconds"] / r["wall_seconds"], 2)
    print(f"\nsuite of {list(tasks)} at {scale} x the step budgets, {learner_seeds} learner seed(s), baseline "
          f"seed [0], {cores} cores:\n")
    print("| mode | jobs | threads per job | wall (s) | speed-up |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['mode']} | {r['jobs']} | {r['threads_per_job']} | {r['wall_seconds']:.0f} | "
              f"{r['speedup_vs_serial']:.2f} |")
    out = REPO / "benchmarks" / "results" / "suite_fanout.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"tasks": list(tasks), "scale": scale, "learner_seeds": learner_seeds, "cores": cores,
                               "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    app()

"""The paper's Table 2 / Fig. 4 ablations as DVC experiments, turned into a markdown table.

    python scripts/ablation_table.py --seeds 0 --seeds 1 [--run/--no-run]

Each (variant, seed) is `dvc exp run --queue analysis_labeling@<seed> -S disc.* -S seeds.learner=[seed]`, run `--jobs` at
a time with `dvc queue start` (one torch thread each): only the
discriminator, label_safety and the labeling analysis rerun (collect never does); the metrics are
then read back with `dvc exp show --json` and written to reports/<task>/ablations.md as mean ± std
over seeds. `--no-run` only rebuilds the table from experiments already in the repo.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import List

import numpy as np
import typer
import yaml

REPO = Path(__file__).resolve().parents[1]
VARIANTS = {  # name -> params overrides; each names its scorer and backbone, so rows keep their meaning whatever the default
    "DSPO (transformer + return-agnostic)": {"disc.scorer": "discriminator", "disc.backbone": "transformer"},
    "w/o RA": {"disc.scorer": "discriminator", "disc.backbone": "transformer", "disc.mi_weight": 0},
    "w/o RA + gp": {"disc.scorer": "discriminator", "disc.backbone": "transformer", "disc.mi_weight": 0,
                    "disc.grad_penalty": 1.0},
    "MLP backbone (Fig. 4; the discriminator's default)": {"disc.scorer": "discriminator", "disc.backbone": "mlp"},
    "RGM correction (the default scorer)": {"disc.scorer": "rgm"},
}
METRICS = ["auroc", "auroc_within_agent", "recall", "accuracy", "f1", "pearson_safety", "pearson_return"]
app = typer.Typer(add_completion=False)


def exp_name(variant: str, seed: int) -> str:
    slug = "".join(c if c.isalnum() else "-" for c in variant.lower()).strip("-")
    while "--" in slug:
        slug = slug.replace("--", "-")
    return f"abl-{slug[:40]}-s{seed}"


def dvc(*args: str, env: dict | None = None) -> str:
    return subprocess.run([str(Path(sys.executable).parent / "dvc"), *args], cwd=REPO, check=True,
                          capture_output=True, text=True, env=env).stdout


def run_queued(runs: dict[str, list[str]], jobs: int) -> None:
    """Queue every experiment, run them `jobs` at a time (one torch thread each), wait for the queue."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    for name, sets in runs.items():
        print(f"queueing {name}: {' '.join(sets)}", flush=True)
        seed = next(s.split("=")[1].strip("[]") for s in sets if s.startswith("seeds.learner="))
        dvc("exp", "run", "--queue", "-n", name, *sum((["-S", s] for s in sets), []), f"analysis_labeling@{seed}",
            env=env)
    dvc("queue", "start", "-j", str(jobs), env=env)
    while True:
        status = dvc("queue", "status")
        if not any(word in status for word in ("Running", "Queued")):
            break
        time.sleep(20)
    print(status, flush=True)


def find_metrics(node, wanted: dict[str, str], out: dict) -> None:
    """Walk `dvc exp show --json` output; collect {exp name: labeling metrics} of *finished* experiments
    (a queued or running one shows the workspace's metrics under rev "workspace"); `wanted`: name -> the
    metrics file (suffix) that experiment's seed writes."""
    if isinstance(node, dict):
        name = node.get("name")
        data = node.get("data") if isinstance(node.get("data"), dict) else None
        if name in wanted and data and data.get("rev") == node.get("rev") and data.get("timestamp"):
            for path, entry in (data.get("metrics") or {}).items():
                if path.endswith(wanted[name]):
                    out[name] = entry.get("data", entry)
        for value in node.values():
            find_metrics(value, wanted, out)
    elif isinstance(node, list):
        for value in node:
            find_metrics(value, wanted, out)


@app.command()
def main(seeds: List[int] = typer.Option([0], help="seeds to run each variant with"),
         run: bool = typer.Option(True, help="run the experiments (else only tabulate existing ones)"),
         jobs: int = typer.Option(2, help="experiments run at once (each with one torch thread)")) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    task = params["task"]
    names = {(v, s): exp_name(v, s) for v in VARIANTS for s in seeds}
    if run:
        run_queued({name: [f"{k}={v}" for k, v in {**VARIANTS[variant], "seeds.learner": f"[{seed}]"}.items()]
                    for (variant, seed), name in names.items()}, jobs)
    found: dict = {}
    find_metrics(json.loads(dvc("exp", "show", "--json", "--all-commits")),
                 {name: f"labeling/seed{seed}.json" for (_, seed), name in names.items()}, found)
    lines = [f"# {task}: discriminator ablations on D^U (paper Table 2, Fig. 4)", "",
             f"mean ± std over seeds {list(seeds)}; each cell from `dvc exp run --queue analysis_labeling -S ...` "
             "(see scripts/ablation_table.py). Decision rule for recall/accuracy/F1: z >= min safe-demo z.", "",
             "| method | " + " | ".join(METRICS) + " |", "|---" * (len(METRICS) + 1) + "|"]
    for variant in VARIANTS:
        rows = [found[names[(variant, s)]] for s in seeds if names[(variant, s)] in found]
        if not rows:
            lines.append(f"| {variant} | " + " | ".join("—" for _ in METRICS) + " |")
            continue
        cells = []
        for m in METRICS:
            vals = np.array([r[m] for r in rows if r.get(m) is not None], dtype=float)
            cells.append(f"{np.nanmean(vals):.3f} ± {np.nanstd(vals):.3f}" if len(vals) else "—")
        lines.append(f"| {variant} (n={len(rows)}) | " + " | ".join(cells) + " |")
    yard = next((found[n] for n in names.values() if n in found), None)
    if yard and isinstance(yard.get("yardsticks"), dict):
        for name, vals in yard["yardsticks"].items():
            lines.append(f"| {name} | " + " | ".join(f"{vals[m]:.3f}" if isinstance(vals.get(m), (int, float)) else "—"
                                                  for m in METRICS) + " |")
    out = REPO / "reports" / task / "ablations.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    app()

"""Probe a discriminator setting before changing a default: train one, score D^U, print Table-2 metrics.

    python scripts/disc_probe.py --task BallCircle --seed 0
    python scripts/disc_probe.py --task BallCircle --set disc.backbone=mlp --set disc.mi_weight=0 --json out.json

Reads the task's committed `data/<task>/dataset.parquet` (run `dvc repro collect` first) and, for the
metrics only, `oracle.parquet`: a diagnostic, like the analysis stages, never a method's input.
Prints the discriminator's AUROC / within-agent AUROC / F1 / pearson with return beside the
oracle-free yardsticks (-return, NN distance to the demos), and the vCLUB estimate along training
(start, highest, end), and along training the held-out-demo rank the stage selects on beside the
oracle AUROC of the same state (does selection pick a good state?). The pipeline's discriminators are trained by `train_discriminator`, not here.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import List, Optional

import numpy as np
import pandas as pd
import typer

from dspo.core.cli import stage, task_dirs
from dspo.core.config import load_params, resolve_device
from dspo.core.errors import DataError
from dspo.data.schemas import ORACLE, SAFE_DEMO, read_dataset, read_frame
from dspo.evaluation.labeling import labeling_rows, score_metrics
from dspo.learners.dspo.discriminator import (DiscConfig, check_discriminator_data, score_episodes,
                                              train_discriminator, window_logits)
from dspo.suite.plan import parse_sets, task_params

REPO = Path(__file__).resolve().parents[1]
app = typer.Typer(add_completion=False)
SHOWN = ["auroc", "auroc_within_agent", "f1", "pearson_return"]


@app.command()
@stage
def main(task: str = typer.Option(..., help="task name from the registry"),
         seed: int = typer.Option(0, help="learner seed of the discriminator"),
         set_: Optional[List[str]] = typer.Option(None, "--set", help="disc.key=value on top of params.yaml"),
         params: Path = typer.Option(REPO / "params.yaml", help="params file"),
         device: str = typer.Option("auto", help="auto | cpu | cuda[:n]"),
         json_out: Optional[Path] = typer.Option(None, "--json", help="also write the results here")) -> None:
    overrides = parse_sets(set_)
    cfg = DiscConfig.from_params(task_params(load_params(params), task, overrides), source=params)
    dirs = task_dirs(task)
    data = read_dataset(dirs["data"] / "dataset.parquet", task=task)
    check_discriminator_data(data, cfg)
    oracle = read_frame(ORACLE, dirs["data"] / "oracle.parquet").groupby("episode_id").first()

    split = pd.Series(data.split, index=data.episode_id).groupby(level=0).first()
    episodes = split.rename("split").to_frame().join(data.episode_returns().rename("return")) \
        .join(oracle[["is_safe", "source_agent"]], how="inner")
    if len(episodes) != len(split):
        raise DataError("dataset.parquet and oracle.parquet disagree on the episode ids (rerun collect)")

    def oracle_auroc(learner, step: int) -> dict:
        """The oracle AUROC of the state the stage's selection row just scored (a diagnostic)."""
        order = pd.Index(learner.windows.episode_ids).get_indexer(episodes.index)
        logits = window_logits(learner.model, learner.windows, cfg.context_len)[order]
        return {"oracle_auroc": score_metrics(logits, episodes)["auroc"]}

    start = time.perf_counter()
    model, normalizer, history, selection = train_discriminator(data, cfg, resolve_device(device), seed,
                                                                probe=oracle_auroc)
    seconds = time.perf_counter() - start
    scores = score_episodes(model, normalizer, data, cfg.context_len).set_index("episode_id")
    episodes = episodes.join(scores["z"])
    threshold = float(episodes.loc[episodes["split"] == SAFE_DEMO, "z"].min())
    rows = labeling_rows(data, episodes, episodes["z"].to_numpy(), threshold)
    vclub = history["vclub"].to_numpy()
    result = {"task": task, "seed": seed, "overrides": overrides, "train_seconds": round(seconds, 1),
              "selected_step": selection["selected_step"],
              "vclub": {"start": float(vclub[0]), "max": float(np.max(vclub)), "end": float(vclub[-1])},
              "curve": history.dropna(subset=["oracle_auroc"])[["step", "holdout_rank", "oracle_auroc", "vclub"]]
              .to_dict(orient="records"),
              "rows": {name: {k: row[k] for k in SHOWN if k in row} for name, row in rows.items()}}
    typer.echo(f"\n{task} seed {seed} {overrides or '(params.yaml)'}: trained in {seconds:.0f} s, selected step "
               f"{selection['selected_step']}; vCLUB start {vclub[0]:.3f}, max {np.max(vclub):.3f}, end {vclub[-1]:.3f}\n")
    typer.echo(history.dropna(subset=["oracle_auroc"])[["step", "loss_d", "vclub", "holdout_rank", "oracle_auroc"]]
               .to_string(index=False, float_format=lambda v: f"{v:.3f}") + "\n")
    typer.echo("| score | " + " | ".join(SHOWN) + " |\n" + "|---" * (len(SHOWN) + 1) + "|")
    for name, row in result["rows"].items():
        typer.echo(f"| {name} | " + " | ".join(f"{row.get(k, float('nan')):.3f}" for k in SHOWN) + " |")
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    app()

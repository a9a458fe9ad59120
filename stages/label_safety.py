"""Stage label_safety: score every episode with z = D(tau) (or RGM's correction, `disc.scorer`); the generation
condition is the min demo z.

Cost-label-free: reads only the learner table and the scorer (never the oracle).
"""
import numpy as np
import pandas as pd
import typer

from dspo.core.artifacts import write_json
from dspo.core.cli import seed_dir, stage, task_dirs
from dspo.core.config import resolve_device
from dspo.data.schemas import LABELED, SAFE_DEMO, read_dataset, write_table
from dspo.learners.dspo.scorer import load_scorer

app = typer.Typer(add_completion=False)


@app.command()
@stage
def main(task: str = typer.Option(..., help="task name from the registry"),
         seed: int = typer.Option(..., help="learner seed (the discriminator of that seed)"),
         device: str = typer.Option("auto", help="auto | cpu | cuda[:n]")) -> None:
    dirs = task_dirs(task)
    data = read_dataset(dirs["data"] / "dataset.parquet", task=task)
    scorer, _ = load_scorer(dirs["models"] / "discriminator" / seed_dir(seed) / "model.pt", task=task,
                            obs_dim=data.obs_dim, act_dim=data.act_dim, device=resolve_device(device))
    scores = scorer.score_episodes(data)
    ids, first = np.unique(data.episode_id, return_index=True)
    split = pd.Series(data.split[first], index=ids)
    scores["split"] = split.reindex(scores["episode_id"].to_numpy()).to_numpy()  # joined on episode_id
    write_table(LABELED, {"episode_id": scores["episode_id"].to_numpy(), "split": scores["split"].to_numpy(),
                          "return": scores["return"].to_numpy(), "z": scores["z"].to_numpy()},
                dirs["data"] / "dspo" / seed_dir(seed) / "labeled.parquet", task=task)
    demos = scores[scores["split"] == SAFE_DEMO]
    condition = {
        "task": task,
        "z_min_safe_demo": float(demos["z"].min()),  # the generation condition (paper App. D.1)
        "z_mean_safe_demo": float(demos["z"].mean()),
        "demo_return_min": float(demos["return"].min()),
        "demo_return_max": float(demos["return"].max()),
        "episodes_scored": int(len(scores)),
        "unlabeled_at_or_above_condition": int(((scores["split"] != SAFE_DEMO) & (scores["z"] >= demos["z"].min())).sum()),
    }
    write_json(condition, dirs["data"] / "dspo" / seed_dir(seed) / "safety_condition.json")
    typer.echo(f"{scorer.name}: scored {len(scores)} episodes; min safe-demo z = {condition['z_min_safe_demo']:.4f}, "
               f"{condition['unlabeled_at_or_above_condition']} D^U episodes at or above it")


if __name__ == "__main__":
    app()

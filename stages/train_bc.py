"""Stage train_bc: BC-All (D^S and D^U) or BC-Safe (D^S only) on the cost-label-free dataset."""
from pathlib import Path

import numpy as np
import typer

from dspo.core.artifacts import save_checkpoint, write_curve
from dspo.core.cli import seed_dir, stage, task_dirs
from dspo.core.config import read_section, resolve_device, seed_everything
from dspo.core.errors import ParamError
from dspo.data.schemas import read_dataset
from dspo.data.tasks import get_task
from dspo.learners.bc import SPLITS, BCConfig, train_bc

app = typer.Typer(add_completion=False)


@app.command()
@stage
def main(task: str = typer.Option(..., help="task name from the registry"),
         algo: str = typer.Option(..., help=f"one of {sorted(SPLITS)}"),
         seed: int = typer.Option(..., help="learner seed"),
         device: str = typer.Option("auto", help="auto | cpu | cuda[:n]"),
         params: Path = typer.Option(Path("params.yaml"), help="params file")) -> None:
    if algo not in SPLITS:
        raise ParamError(f"unknown BC variant {algo!r}; valid: {sorted(SPLITS)}")
    spec = get_task(task)
    cfg = read_section(BCConfig, params).for_algo(algo)
    dirs = task_dirs(task)
    data = read_dataset(dirs["data"] / "dataset.parquet", task=task)
    if SPLITS[algo] is not None:
        data = data.select(data.split == SPLITS[algo])
    seed_everything(seed)
    policy, curve = train_bc(data.obs, data.action, spec.act_low, spec.act_high, cfg, resolve_device(device), desc=algo)
    out = dirs["models"] / algo / seed_dir(seed) / "policy.pt"
    save_checkpoint(policy.checkpoint(task, {"algo": algo, "seed": seed, "train_pairs": int(len(data.obs)),
                                             "trainer": cfg.model_dump(exclude={"per_algo"})}), out)
    write_curve(curve, dirs["reports"] / "train" / algo / f"{seed_dir(seed)}.csv")
    typer.echo(f"{algo}: {len(data.obs)} pairs from {len(np.unique(data.episode_id))} episodes, "
               f"final MSE {curve['mse'].iloc[-1]:.4f} -> {out}")


if __name__ == "__main__":
    app()

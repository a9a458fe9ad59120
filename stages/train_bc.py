"""Stage train_bc: BC-All (D^S and D^U) or BC-Safe (D^S only) on the cost-label-free dataset."""
from pathlib import Path

import numpy as np
import typer

from dspo.artifacts import save_torch
from dspo.cli import stage, task_dirs
from dspo.config import ParamError, load_params, resolve_device, section, seed_everything
from dspo.curves import write_curve
from dspo.envs import env_spaces
from dspo.schemas import SAFE_DEMO, read_dataset
from dspo.tasks import get_task
from dspo.train.bc import BCConfig, train_bc

SPLITS_BY_ALGO = {"bc_all": None, "bc_safe": SAFE_DEMO}  # None: every split

app = typer.Typer(add_completion=False)


@app.command()
@stage
def main(task: str = typer.Option(..., help="task name from the registry"),
         algo: str = typer.Option(..., help=f"one of {sorted(SPLITS_BY_ALGO)}"),
         seed: int = typer.Option(0, help="seed"),
         device: str = typer.Option("auto", help="auto | cpu | cuda[:n]"),
         params: Path = typer.Option(Path("params.yaml"), help="params file")) -> None:
    if algo not in SPLITS_BY_ALGO:
        raise ParamError(f"unknown BC variant {algo!r}; valid: {sorted(SPLITS_BY_ALGO)}")
    spec = get_task(task)
    cfg = BCConfig.from_params(section(load_params(params), "bc"))
    dirs = task_dirs(task)
    data = read_dataset(dirs["data"] / "dataset.parquet", task=task)
    split = SPLITS_BY_ALGO[algo]
    if split is not None:
        data = data.select(data.split == split)
    spaces = env_spaces(spec)
    if data.obs_dim != spaces.obs_dim or data.act_dim != spaces.act_dim:
        raise ValueError(f"dataset has obs/action sizes {data.obs_dim}/{data.act_dim}, task {task!r} has "
                         f"{spaces.obs_dim}/{spaces.act_dim}")
    seed_everything(seed)
    policy, curve = train_bc(data.obs, data.action, spaces.act_low, spaces.act_high, cfg,
                             resolve_device(device), desc=algo)
    out = dirs["models"] / algo / "policy.pt"
    save_torch(policy.checkpoint(task, {"algo": algo, "train_pairs": int(len(data.obs))}), out)
    write_curve(curve, dirs["reports"] / "train" / f"{algo}.csv")
    typer.echo(f"{algo}: {len(data.obs)} pairs from {len(np.unique(data.episode_id))} episodes, "
               f"final MSE {curve['mse'].iloc[-1]:.4f} -> {out}")


if __name__ == "__main__":
    app()

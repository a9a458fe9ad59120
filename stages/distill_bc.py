"""Stage distill_bc: the BC trainer on D^S ∪ D^G (paper §4.2), D^G drawn with share `distill.generated_share`."""
from pathlib import Path

import numpy as np
import typer

from dspo.artifacts import save_torch
from dspo.cli import stage, task_dirs
from dspo.config import load_params, require, resolve_device, section, seed_everything
from dspo.curves import write_curve
from dspo.envs import env_spaces
from dspo.schemas import GENERATED, SAFE_DEMO, read_dataset, read_table, vectors
from dspo.tasks import get_task
from dspo.train.bc import BCConfig, train_bc

app = typer.Typer(add_completion=False)


def mixture_weights(n_demo: int, n_generated: int, generated_share: float) -> np.ndarray:
    """Per-pair sampling weights so that a fraction `generated_share` of each batch is generated."""
    if n_generated == 0 and generated_share > 0:
        raise ValueError("distill.generated_share > 0 but the generated table is empty")
    demo_w = (1.0 - generated_share) / max(n_demo, 1)
    gen_w = generated_share / max(n_generated, 1)
    return np.concatenate([np.full(n_demo, demo_w), np.full(n_generated, gen_w)])


@app.command()
@stage
def main(task: str = typer.Option(..., help="task name from the registry"),
         generated: Path = typer.Option(..., help="generated.parquet"),
         algo: str = typer.Option("dspo", help="policy folder under models/<task>/"),
         seed: int = typer.Option(0, help="seed"),
         device: str = typer.Option("auto", help="auto | cpu | cuda[:n]"),
         params: Path = typer.Option(Path("params.yaml"), help="params file")) -> None:
    get_task(task)
    all_params = load_params(params)
    cfg = BCConfig.from_params(section(all_params, "bc"))
    share = float(require(section(all_params, "distill"), "generated_share", "distill", minimum=0, maximum=1))
    dirs = task_dirs(task)
    data = read_dataset(dirs["data"] / "dataset.parquet", task=task)
    demos = data.select(data.split == SAFE_DEMO)
    table, info = read_table(GENERATED, generated)
    if info["task"] != task:
        raise ValueError(f"{generated}: generated for task {info['task']!r}, expected {task!r}")
    gen_obs, gen_act = vectors(table, "obs"), vectors(table, "action")
    spaces = env_spaces(task)
    if gen_obs.shape[1] != spaces.obs_dim or gen_act.shape[1] != spaces.act_dim:
        raise ValueError(f"{generated}: obs/action sizes {gen_obs.shape[1]}/{gen_act.shape[1]} do not match task "
                         f"{task!r} ({spaces.obs_dim}/{spaces.act_dim})")
    obs = np.concatenate([demos.obs, gen_obs])
    act = np.concatenate([demos.action, gen_act])
    seed_everything(seed)
    policy, curve = train_bc(obs, act, spaces.act_low, spaces.act_high, cfg, resolve_device(device),
                             weights=mixture_weights(len(demos.obs), len(gen_obs), share), desc=algo)
    out = dirs["models"] / algo / "policy.pt"
    save_torch(policy.checkpoint(task, {"algo": algo, "demo_pairs": int(len(demos.obs)),
                                        "generated_pairs": int(len(gen_obs)), "generated_share": share}), out)
    write_curve(curve, dirs["reports"] / "train" / f"{algo}.csv")
    typer.echo(f"{algo}: {len(demos.obs)} demo + {len(gen_obs)} generated pairs (share {share}), final MSE "
               f"{curve['mse'].iloc[-1]:.4f} -> {out}")


if __name__ == "__main__":
    app()

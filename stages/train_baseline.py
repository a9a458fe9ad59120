"""Stage train_baseline: one of the paper's baselines on the cost-label-free dataset.

td3bc / iql / cql / dwbc / rgm learn from (s, a, r, s') transitions of dataset.parquet;
cdt_v additionally reads RGM's learned reward correction (models/<task>/rgm/reward_correction.pt)
as its cost estimator. Hyper-parameters come from the params.yaml section named like the algo;
the learner is the module `dspo.learners.baselines.<algo>` (its `ALGORITHMS` entry).
"""
import importlib
from pathlib import Path

import typer

from dspo.core.artifacts import save_checkpoint, write_curve
from dspo.core.cli import seed_dir, stage, task_dirs
from dspo.core.config import load_params, resolve_device, seed_everything
from dspo.core.errors import ParamError
from dspo.data.schemas import read_dataset
from dspo.data.tasks import get_task
from dspo.learners.transitions import build_offline_data

BASELINES = ("td3bc", "iql", "cql", "dwbc", "rgm", "cdt_v")  # the modules under dspo/learners/baselines/

app = typer.Typer(add_completion=False)


@app.command()
@stage
def main(task: str = typer.Option(..., help="task name from the registry"),
         algo: str = typer.Option(..., help=f"one of {list(BASELINES)}"),
         seed: int = typer.Option(..., help="learner seed"),
         device: str = typer.Option("auto", help="auto | cpu | cuda[:n]"),
         params: Path = typer.Option(Path("params.yaml"), help="params file")) -> None:
    if algo not in BASELINES:
        raise ParamError(f"unknown baseline {algo!r}; valid: {list(BASELINES)}")
    spec = get_task(task)
    module = importlib.import_module(f"dspo.learners.baselines.{algo}")
    (alg,) = module.ALGORITHMS
    cfg = alg.config.from_params(load_params(params), alg.section, source=params)
    dirs = task_dirs(task)
    data = read_dataset(dirs["data"] / "dataset.parquet", task=task)
    torch_device = resolve_device(device)
    out_dir = dirs["models"] / algo / seed_dir(seed)
    if algo == "cdt_v":
        from dspo.learners.baselines.rgm import RewardCorrection

        correction, norms = RewardCorrection.load(dirs["models"] / "rgm" / seed_dir(seed) / "reward_correction.pt", task)
        seed_everything(seed)
        policy, curve, extras = module.train(data, correction, norms, spec.cost_limit, cfg, torch_device)
        save_checkpoint(policy.checkpoint(task, {"algo": algo, **extras}), out_dir / "policy.pt")
    else:
        offline = build_offline_data(data, spec.act_low, spec.act_high, torch_device)
        seed_everything(seed)
        policy, curve, extras = alg.train(offline, cfg, torch_device, desc=algo)
        if "correction" in extras:
            correction = extras.pop("correction")
            save_checkpoint(correction.checkpoint(task, offline.obs_norm, offline.act_bounds, offline.obs_dim,
                                                  offline.act_dim), out_dir / "reward_correction.pt")
        save_checkpoint(policy.checkpoint(task, {"algo": algo, "train_transitions": offline.size, **extras}),
                        out_dir / "policy.pt")
    write_curve(curve, dirs["reports"] / "train" / algo / f"{seed_dir(seed)}.csv")
    last = curve.iloc[-1].drop("step")
    typer.echo(f"{algo}: {len(data.obs)} steps, final " + ", ".join(f"{k} {v:.4g}" for k, v in last.items())
               + f" -> {out_dir / 'policy.pt'}")


if __name__ == "__main__":
    app()

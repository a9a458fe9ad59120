"""Stage train_baseline: one of the paper's baselines on the cost-label-free dataset.

td3bc / iql / cql / dwbc / rgm learn from (s, a, r, s') transitions of dataset.parquet;
cdt_v additionally reads RGM's learned reward correction (models/<task>/rgm/reward_correction.pt)
as its cost estimator. Hyper-parameters come from the params.yaml section named like the algo.
"""
from pathlib import Path

import torch
import typer

from dspo.artifacts import save_torch
from dspo.cli import stage, task_dirs
from dspo.config import ParamError, load_params, resolve_device, section, seed_everything
from dspo.curves import write_curve
from dspo.envs import env_spaces
from dspo.offline import BASELINES, STEP_LEARNERS
from dspo.offline.common import build_offline_data, config_from_params
from dspo.rollout import CheckpointMismatchError
from dspo.schemas import read_dataset
from dspo.tasks import get_task

app = typer.Typer(add_completion=False)


def load_correction(path: Path, task: str):
    from dspo.normalizers import BoundsNormalizer, GaussianNormalizer
    from dspo.offline.rgm import RewardCorrection

    if not path.exists():
        raise FileNotFoundError(f"{path}: RGM reward correction not found (run `dvc repro train_rgm` first)")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if ckpt.get("kind") != "rgm_reward_correction" or ckpt.get("task") != task:
        raise CheckpointMismatchError(f"{path}: not an RGM reward correction for task {task!r}")
    norms = (GaussianNormalizer.from_state_dict(ckpt["obs_norm"]), BoundsNormalizer.from_state_dict(ckpt["act_bounds"]))
    return RewardCorrection.from_checkpoint(ckpt), norms


@app.command()
@stage
def main(task: str = typer.Option(..., help="task name from the registry"),
         algo: str = typer.Option(..., help=f"one of {list(BASELINES)}"),
         seed: int = typer.Option(0, help="seed"),
         device: str = typer.Option("auto", help="auto | cpu | cuda[:n]"),
         params: Path = typer.Option(Path("params.yaml"), help="params file")) -> None:
    if algo not in BASELINES:
        raise ParamError(f"unknown baseline {algo!r}; valid: {list(BASELINES)}")
    spec = get_task(task)
    all_params = load_params(params)
    dirs = task_dirs(task)
    data = read_dataset(dirs["data"] / "dataset.parquet", task=task)
    spaces = env_spaces(spec)
    if data.obs_dim != spaces.obs_dim or data.act_dim != spaces.act_dim:
        raise ValueError(f"dataset has obs/action sizes {data.obs_dim}/{data.act_dim}, task {task!r} has "
                         f"{spaces.obs_dim}/{spaces.act_dim}")
    torch_device = resolve_device(device)
    out_dir = dirs["models"] / algo
    if algo == "cdt_v":
        from dspo.offline import cdt

        cfg = config_from_params(cdt.CDTConfig, section(all_params, "cdt_v"), "cdt_v")
        correction, norms = load_correction(dirs["models"] / "rgm" / "reward_correction.pt", task)
        seed_everything(seed)
        policy, curve, extras = cdt.train(data, correction, norms, spec.cost_limit, cfg, torch_device)
        save_torch(policy.checkpoint(task, {"algo": algo, **extras}), out_dir / "policy.pt")
    else:
        learner = STEP_LEARNERS[algo]
        cfg = config_from_params(learner.config, section(all_params, algo), algo)
        offline = build_offline_data(data, spaces.act_low, spaces.act_high, torch_device)
        seed_everything(seed)
        policy, curve, extras = learner.train(offline, cfg, torch_device, desc=algo)
        if "correction" in extras:
            correction = extras.pop("correction")
            save_torch(correction.checkpoint(task, offline.obs_norm, offline.act_bounds, offline.obs_dim,
                                             offline.act_dim), out_dir / "reward_correction.pt")
        save_torch(policy.checkpoint(task, {"algo": algo, "train_transitions": offline.size, **extras}),
                   out_dir / "policy.pt")
    write_curve(curve, dirs["reports"] / "train" / f"{algo}.csv")
    last = curve.iloc[-1].drop("step")
    typer.echo(f"{algo}: {len(data.obs)} steps, final " + ", ".join(f"{k} {v:.4g}" for k, v in last.items())
               + f" -> {out_dir / 'policy.pt'}")


if __name__ == "__main__":
    app()

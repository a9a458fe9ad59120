"""Stage evaluate: roll a trained policy out in the real simulator and write normalized metrics."""
from pathlib import Path

import typer

from dspo.artifacts import write_json
from dspo.cli import stage, task_dirs
from dspo.config import ParamError, load_params, require, resolve_device, section
from dspo.envs import env_spaces
from dspo.evaluation import eval_seeds, evaluate_policy
from dspo.policies import load_policy
from dspo.schemas import EVAL_EPISODES, write_table
from dspo.tasks import get_task

app = typer.Typer(add_completion=False)


@app.command()
@stage
def main(task: str = typer.Option(..., help="task name from the registry"),
         algo: str = typer.Option(..., help="policy folder under models/<task>/"),
         device: str = typer.Option("auto", help="auto | cpu | cuda[:n]"),
         params: Path = typer.Option(Path("params.yaml"), help="params file")) -> None:
    spec = get_task(task)
    cfg = section(load_params(params), "eval")
    episodes = require(cfg, "episodes", "eval", kind=int, minimum=1)
    seed = require(cfg, "seed", "eval", kind=int, minimum=0)
    n_envs = require(cfg, "n_envs", "eval", kind=int, minimum=1)
    if not algo.replace("_", "").isalnum():
        raise ParamError(f"algo name {algo!r} must be alphanumeric with underscores")
    dirs = task_dirs(task)
    policy = load_policy(dirs["models"] / algo / "policy.pt", task, env_spaces(spec).obs_dim, resolve_device(device))
    table, metrics = evaluate_policy(spec, policy,
                                     eval_seeds(seed, episodes), n_envs, desc=f"evaluate {algo}")
    metrics["algo"] = algo
    out_dir = dirs["reports"] / "eval"
    write_table(EVAL_EPISODES, {c: table[c].to_numpy() for c in EVAL_EPISODES.columns()},
                out_dir / f"{algo}_episodes.parquet", task=task)
    write_json(metrics, out_dir / f"{algo}.json")
    typer.echo(f"{algo} on {task}: normalized reward {metrics['normalized_reward']:.3f} "
               f"± {metrics['normalized_reward_std']:.3f}, normalized cost {metrics['normalized_cost']:.3f} "
               f"± {metrics['normalized_cost_std']:.3f} ({'safe' if metrics['safe'] else 'UNSAFE'})")


if __name__ == "__main__":
    app()

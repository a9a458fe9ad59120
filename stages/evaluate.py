"""Stage evaluate: roll a trained policy out in the real simulator and write normalized metrics."""
from pathlib import Path

import typer

from dspo.core.artifacts import write_json
from dspo.core.cli import stage, task_dirs
from dspo.core.config import read_section, resolve_device
from dspo.core.errors import ParamError
from dspo.core.seeds import eval_seeds
from dspo.data.schemas import EVAL_EPISODES, write_table
from dspo.data.tasks import get_task
from dspo.evaluation.evaluate import EvalConfig, evaluate_policy
from dspo.evaluation.policies import load_policy

app = typer.Typer(add_completion=False)


@app.command()
@stage
def main(task: str = typer.Option(..., help="task name from the registry"),
         algo: str = typer.Option(..., help="policy folder under models/<task>/"),
         device: str = typer.Option("auto", help="auto | cpu | cuda[:n]"),
         params: Path = typer.Option(Path("params.yaml"), help="params file")) -> None:
    spec = get_task(task)
    cfg = read_section(EvalConfig, params)
    if not algo.replace("_", "").isalnum():
        raise ParamError(f"algo name {algo!r} must be alphanumeric with underscores")
    dirs = task_dirs(task)
    policy = load_policy(dirs["models"] / algo / "policy.pt", task, spec.obs_dim, resolve_device(device))
    table, metrics = evaluate_policy(spec, policy, eval_seeds(cfg.seed, cfg.episodes), cfg.n_envs,
                                     desc=f"evaluate {algo}")
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

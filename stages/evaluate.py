"""Stage evaluate: roll one trained policy (algorithm x learner seed) out in the real simulator.

Both evaluation blocks are run: `tuning` (knobs are chosen on it) and `test` (the committed tables
read it and nothing else). Every policy meets the same episodes of a block, so comparisons pair.
"""
from pathlib import Path

import pandas as pd
import typer

from dspo.core.artifacts import write_json
from dspo.core.cli import seed_dir, stage, task_dirs
from dspo.core.config import read_section, resolve_device
from dspo.core.errors import ParamError
from dspo.core.seeds import EVAL_BLOCKS, eval_seeds
from dspo.data.schemas import EVAL_EPISODES, write_table
from dspo.data.tasks import get_task
from dspo.evaluation.evaluate import EvalConfig, evaluate_policy
from dspo.evaluation.policies import load_policy

app = typer.Typer(add_completion=False)


@app.command()
@stage
def main(task: str = typer.Option(..., help="task name from the registry"),
         algo: str = typer.Option(..., help="policy folder under models/<task>/"),
         seed: int = typer.Option(..., help="learner seed (the policy under models/<task>/<algo>/seed<k>/)"),
         device: str = typer.Option("auto", help="auto | cpu | cuda[:n]"),
         params: Path = typer.Option(Path("params.yaml"), help="params file")) -> None:
    spec = get_task(task)
    cfg = read_section(EvalConfig, params)
    if not algo.replace("_", "").isalnum():
        raise ParamError(f"algo name {algo!r} must be alphanumeric with underscores")
    dirs = task_dirs(task)
    policy_path = dirs["models"] / algo / seed_dir(seed) / "policy.pt"
    episodes = {"tuning": cfg.tuning_episodes, "test": cfg.test_episodes}
    metrics, tables = {"task": task, "algo": algo, "seed": seed}, []
    for block in EVAL_BLOCKS:
        policy = load_policy(policy_path, task, spec.obs_dim, resolve_device(device))  # fresh memory per block
        table, metrics[block] = evaluate_policy(spec, policy, eval_seeds(block, episodes[block]), cfg.n_envs,
                                                desc=f"evaluate {algo} seed {seed} ({block})")
        tables.append(table.assign(block=block))
    table = pd.concat(tables, ignore_index=True)
    out_dir = dirs["reports"] / "eval" / algo
    write_table(EVAL_EPISODES, {c: table[c].to_numpy() for c in EVAL_EPISODES.columns()},
                out_dir / f"{seed_dir(seed)}_episodes.parquet", task=task)
    write_json(metrics, out_dir / f"{seed_dir(seed)}.json")
    for block in EVAL_BLOCKS:
        m = metrics[block]
        typer.echo(f"{algo} seed {seed} on {task} [{block}, {m['episodes']} episodes]: normalized reward "
                   f"{m['normalized_reward']:.3f} ± {m['normalized_reward_std']:.3f}, normalized cost "
                   f"{m['normalized_cost']:.3f} ± {m['normalized_cost_std']:.3f} ({'safe' if m['safe'] else 'UNSAFE'})")


if __name__ == "__main__":
    app()

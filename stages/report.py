"""Stage report: the task's results over learner seeds (test block), the tuning-block twin, the labeling row.

The rows are `algorithms.evaluated` (over `seeds.learner`) then `algorithms.evaluated_baselines`
(over `seeds.baseline`) from params.yaml; names and roles come from the algorithm registry.
Writes `results.{json,md,png}` (test block: the committed table), `tuning.{json,md}` (the block
knobs are chosen on) and `labeling.{json,md}` (Table-2 row: labeling metrics over seeds).
"""
from pathlib import Path

import typer

from dspo.core.artifacts import atomic_path, write_json
from dspo.core.cli import seed_dir, stage, task_dirs
from dspo.core.config import load_params
from dspo.core.errors import ParamError
from dspo.core.seeds import SeedsConfig
from dspo.data.tasks import get_task
from dspo.evaluation.report import (comparisons, labeling_row, plot_results, results_markdown, table2_markdown,
                                    task_rows)
from dspo.learners.registry import AlgorithmLists

app = typer.Typer(add_completion=False)


@app.command()
@stage
def main(task: str = typer.Option(..., help="task name from the registry"),
         params: Path = typer.Option(Path("params.yaml"), help="params file")) -> None:
    spec = get_task(task)
    all_params = load_params(params)
    lists = AlgorithmLists.from_params(all_params, source=params)
    seeds = SeedsConfig.from_params(all_params, source=params)
    if lists.unknown():
        raise ParamError(f"{params}: algorithms lists name unregistered algorithm(s) {lists.unknown()}")
    reports = task_dirs(task)["reports"]
    runs = lists.runs(seeds)
    for block, name in (("test", "results"), ("tuning", "tuning")):
        rows = task_rows(spec, runs, reports / "eval", block)
        comps = comparisons(rows)
        write_json({"task": task, "eval_block": block, "episodes_per_seed": min(r["episodes_per_seed"] for r in rows),
                    "rows": rows, "comparisons": comps}, reports / f"{name}.json")
        with atomic_path(reports / f"{name}.md") as tmp:
            tmp.write_text(results_markdown(spec, rows, comps, block))
        if block == "test":
            plot_results(spec, rows, block, reports / "results.png")
            typer.echo("\n".join(f"{r['name']:>36}: reward {r['reward_mean']:.3f}, cost {r['cost_mean']:.2f}, "
                                 f"safe seeds {r['safe_seed_fraction']:.2f}" for r in rows))
    row = labeling_row(spec, [reports / "labeling" / f"{seed_dir(s)}.json" for s in seeds.learner],
                       [reports / "rgm_costs" / f"{seed_dir(s)}.json" for s in seeds.baseline])
    write_json(row, reports / "labeling.json")
    with atomic_path(reports / "labeling.md") as tmp:
        tmp.write_text(f"# {task}: safety labeling of D^U, mean over learner seeds\n\n" + table2_markdown([row]))


if __name__ == "__main__":
    app()

"""Stage report: results table (markdown) and reward-vs-cost scatter over the evaluated algorithms.

The rows are `algorithms.evaluated` from params.yaml, in that order; names and roles (method,
baseline, analysis) come from the algorithm registry.
"""
from pathlib import Path

import typer

from dspo.core.cli import stage, task_dirs
from dspo.core.config import read_section
from dspo.core.errors import ParamError
from dspo.data.tasks import get_task
from dspo.evaluation.report import write_results
from dspo.learners.registry import AlgorithmLists

app = typer.Typer(add_completion=False)


@app.command()
@stage
def main(task: str = typer.Option(..., help="task name from the registry"),
         params: Path = typer.Option(Path("params.yaml"), help="params file")) -> None:
    spec = get_task(task)
    lists = read_section(AlgorithmLists, params)
    if lists.unknown():
        raise ParamError(f"{params}: algorithms lists name unregistered algorithm(s) {lists.unknown()}")
    reports = task_dirs(task)["reports"]
    frame = write_results(spec, [reports / "eval" / f"{a}.json" for a in lists.evaluated], reports / "results.md",
                          reports / "results.png")
    typer.echo(frame[["name", "normalized_reward", "normalized_cost", "safe"]].to_string(index=False))


if __name__ == "__main__":
    app()

"""Stage report: results table (markdown) and reward-vs-cost scatter over every evaluated algorithm."""
from pathlib import Path
from typing import List

import typer

from dspo.cli import stage, task_dirs
from dspo.report import write_results
from dspo.tasks import get_task

app = typer.Typer(add_completion=False)


@app.command()
@stage
def main(task: str = typer.Option(..., help="task name from the registry"),
         algo: List[str] = typer.Option(..., help="algorithms whose reports/<task>/eval/<algo>.json to include")) -> None:
    spec = get_task(task)
    reports = task_dirs(task)["reports"]
    frame = write_results(spec, [reports / "eval" / f"{a}.json" for a in algo], reports / "results.md",
                          reports / "results.png")
    typer.echo(frame[["name", "normalized_reward", "normalized_cost", "safe"]].to_string(index=False))


if __name__ == "__main__":
    app()

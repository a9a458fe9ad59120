"""Stage train_behavior: train the FSRL behavior-agent population once (models/<task>/behavior/)."""
from pathlib import Path

import typer

from dspo.core.cli import stage, task_dirs
from dspo.core.config import read_section
from dspo.data.behavior import BehaviorConfig, train_population
from dspo.data.tasks import get_task

app = typer.Typer(add_completion=False)


@app.command()
@stage
def main(task: str = typer.Option(..., help="task name from the registry"),
         seed: int = typer.Option(..., help="data seed (params.yaml seeds.data)"),
         params: Path = typer.Option(Path("params.yaml"), help="params file")) -> None:
    spec = get_task(task)
    cfg = read_section(BehaviorConfig, params)
    out_dir = task_dirs(task)["models"] / "behavior"
    rows = train_population(spec, cfg, seed, out_dir)
    typer.echo(f"trained {len(cfg.agents)} agents, {len(rows)} snapshots -> {out_dir}")


if __name__ == "__main__":
    app()

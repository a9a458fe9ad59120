"""`make repro`: the default task's pipeline, stale stages fanned out over the cores at one thread each.

    python scripts/repro.py               # what `make repro` runs: units of stale stages, then `dvc repro` here
    python scripts/repro.py --jobs 1      # one unit at a time
    python scripts/repro.py --serial      # plain `dvc repro` at one thread per stage

Same artifacts as `DSPO_THREADS=1 dvc repro` (the committed dvc.lock's thread count), whatever the core count;
see dspo/suite/repro.py for why.
"""
from pathlib import Path
from typing import Optional

import typer

from dspo.core.cli import stage
from dspo.suite.repro import fanout_repro

REPO = Path(__file__).resolve().parents[1]
app = typer.Typer(add_completion=False)


@app.command()
@stage
def main(jobs: Optional[int] = typer.Option(None, min=1, help="units at once (default: every core)"),
         serial: bool = typer.Option(False, help="plain `dvc repro` at one thread, no units"),
         workdir: Path = typer.Option(REPO / ".suite" / "repro", help="units' worktrees and logs (ignored by git)")
         ) -> None:
    summary = fanout_repro(REPO, workdir, jobs=jobs, serial=serial)
    typer.echo(f"repro: done in {summary['wall_seconds']:.0f} s ({len(summary['units'])} unit(s))")


if __name__ == "__main__":
    app()

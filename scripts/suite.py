"""The suite: every task of params.yaml `suite.tasks` through the whole pipeline, then Tables 1-2 and a figure.

    python scripts/suite.py                      # all suite tasks, suite.jobs units at a time
    python scripts/suite.py --task BallCircle --task CarRun --jobs 1
    python scripts/suite.py --task DroneCircle --only data --jobs 1   # only the dataset, all cores on it
    python scripts/suite.py --executor ray --address <head>:6379   # units as Ray tasks (see README "Scaling")

Each task runs as independent units of `dvc repro` (data; one per learner seed; one per baseline
seed; the report) in git worktrees of HEAD that share this project's DVC cache and run-cache, so
work done before (by the suite or by `dvc repro` here) is restored, never recomputed. Writes
reports/suite/{table1,table2}.{json,md}, figure.png, run.json and a folder per task.
"""
from pathlib import Path
from typing import List, Optional

import typer

from dspo.core.cli import stage
from dspo.suite.run import rewrite_tables, run_suite

REPO = Path(__file__).resolve().parents[1]
app = typer.Typer(add_completion=False)


@app.command()
@stage
def main(task: Optional[List[str]] = typer.Option(None, help="run only these suite tasks (default: suite.tasks)"),
         jobs: Optional[int] = typer.Option(None, help="units at once (default: suite.jobs)"),
         cores: Optional[int] = typer.Option(None, help="cores to split between jobs (default: all)"),
         params: Path = typer.Option(REPO / "params.yaml", help="params file (suite section and base params)"),
         out_dir: Path = typer.Option(REPO / "reports" / "suite", help="where tables and per-task reports go"),
         workdir: Path = typer.Option(REPO / ".suite", help="worktrees and logs (git- and dvc-ignored)"),
         executor: str = typer.Option("local", help="local (this machine) | ray (a Ray cluster)"),
         address: str = typer.Option("local", help="ray: cluster address (`ray start --head` prints it); "
                                                   "local = start one on this machine"),
         git_remote: Optional[str] = typer.Option(None, help="ray: git URL the units clone (default: origin)"),
         dvc_remote: Optional[str] = typer.Option(None, help="ray: DVC remote URL (default: the project's)"),
         gpus_per_job: float = typer.Option(0.0, help="ray: GPUs each unit asks for (stages use them: device auto)"),
         retries: int = typer.Option(2, help="ray: retries of a failed unit"),
         only: Optional[List[str]] = typer.Option(None, help="run only these unit kinds: data, learner, baseline, "
                                                             "analyses, report (e.g. --only data)"),
         tables_only: bool = typer.Option(False, help="rewrite Tables 1-2 and the figure from the reports under "
                                                      "--out-dir; runs nothing")) -> None:
    if tables_only:
        covered = rewrite_tables(REPO, params, out_dir)
        typer.echo(f"suite tables rewritten for {', '.join(covered)} -> {out_dir}")
        return
    summary = run_suite(REPO, params, out_dir, workdir, tasks=task or None, jobs=jobs, cores=cores,
                        executor=executor, address=address, git_url=git_remote, remote_url=dvc_remote,
                        gpus_per_job=gpus_per_job, retries=retries, only=only or None)
    typer.echo(f"suite: {len(summary['finished'])} task(s) in {summary['wall_seconds']:.0f} s with {summary['jobs']} "
               f"job(s) x {summary['threads_per_job']} thread(s) -> {out_dir}")


if __name__ == "__main__":
    app()

"""Stage collect: roll the behavior snapshots out, split D^S / D^U, write dataset + oracle + report."""
from pathlib import Path

import typer

from dspo.core.artifacts import read_json, write_json
from dspo.core.cli import stage, task_dirs
from dspo.core.config import read_section
from dspo.core.errors import SplitError
from dspo.data.collect import (CollectConfig, dataset_summary, episode_frame, plan_jobs, plot_dataset, run_jobs,
                               split_episodes, write_tables)
from dspo.data.quality import dataset_quality
from dspo.data.tasks import get_task

app = typer.Typer(add_completion=False)


def refuse_or_warn(problems: list[str], strict: bool, what: str, hint: str = "") -> None:
    """Strict: refuse the data naming every problem; otherwise keep it with a warning."""
    if not problems:
        return
    message = "; ".join(problems)
    if strict:
        raise SplitError(f"the collected episodes {what}: {message} ({hint}set collect.strict=false to keep them "
                         f"with a warning)")
    typer.echo(f"warning: the collected episodes {what}: {message}", err=True)


@app.command()
@stage
def main(task: str = typer.Option(..., help="task name from the registry"),
         seed: int = typer.Option(..., help="data seed (params.yaml seeds.data)"),
         params: Path = typer.Option(Path("params.yaml"), help="params file")) -> None:
    spec = get_task(task)
    cfg = read_section(CollectConfig, params)
    dirs = task_dirs(task)
    behavior_dir = dirs["models"] / "behavior"
    index = read_json(behavior_dir / "index.json")
    if index.get("task") != task:
        raise SplitError(f"{behavior_dir / 'index.json'}: behavior agents were trained for {index.get('task')!r}, not {task!r}")
    jobs = plan_jobs(index["snapshots"], behavior_dir, cfg, seed)
    results = run_jobs(spec, jobs, cfg)
    frame = episode_frame(spec, jobs, results)
    quality, quality_problems = dataset_quality(spec, frame, cfg.quality)
    refuse_or_warn(quality_problems, cfg.strict, "cannot support the method")
    demos, rest, problems = split_episodes(frame, cfg, seed)
    refuse_or_warn(problems, cfg.strict, "cannot give the required split",
                   "train the behavior agents longer, add agents or mixtures, or ")
    episodes = [ep for job_eps in results for ep in job_eps]
    kept = write_tables(spec, episodes, frame, demos, rest, seed, dirs["data"] / "dataset.parquet",
                        dirs["data"] / "oracle.parquet")
    summary = dataset_summary(spec, kept)
    summary["quality"] = {**quality, "problems": quality_problems}
    summary["split_problems"] = problems
    write_json(summary, dirs["reports"] / "dataset.json")
    plot_dataset(spec, kept, dirs["reports"] / "dataset.png")
    typer.echo(f"{summary['episodes']} episodes ({summary['safe_demo']['episodes']} demos), "
               f"safe fraction of D^U {summary['safe_fraction_unlabeled']:.2f} -> {dirs['data']}")


if __name__ == "__main__":
    app()

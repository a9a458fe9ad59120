"""Stage analysis_fig4: the paper's Fig. 4 -- SafetyTransformer vs MLP as *supervised* safe-vs-unsafe
classifiers, trained on true labels and scored on held-out episodes (an analysis: it reads the oracle).

A dataset with too few episodes of a class to split (possible only when `collect.strict` is off) gets
a report saying so instead of a comparison; nothing downstream reads this stage."""
from pathlib import Path

import typer

from dspo.core.artifacts import write_json
from dspo.core.cli import stage, task_dirs
from dspo.core.config import read_section, resolve_device
from dspo.data.schemas import ORACLE, read_dataset, read_frame
from dspo.core.errors import DataError
from dspo.evaluation.fig4 import Fig4Config, plot_fig4, plot_skipped, run_fig4, supervised_split
from dspo.learners.dspo.discriminator import DiscConfig

app = typer.Typer(add_completion=False)


@app.command()
@stage
def main(task: str = typer.Option(..., help="task name from the registry"),
         seed: int = typer.Option(..., help="seed of the split and of both classifiers"),
         device: str = typer.Option("auto", help="auto | cpu | cuda[:n]"),
         params: Path = typer.Option(Path("params.yaml"), help="params file")) -> None:
    disc, cfg = read_section(DiscConfig, params), read_section(Fig4Config, params)
    dirs = task_dirs(task)
    data = read_dataset(dirs["data"] / "dataset.parquet", task=task)
    is_safe = read_frame(ORACLE, dirs["data"] / "oracle.parquet").groupby("episode_id")["is_safe"].first()
    out = dirs["reports"] / "fig4"
    try:
        supervised_split(data, is_safe, cfg.train_fraction, seed)
    except DataError as err:  # too few episodes of a class (a non-strict collect): say so, nothing to compare
        write_json({"task": task, "seed": seed, "skipped": str(err)}, out / "fig4.json")
        plot_skipped(str(err), out / "fig4.png")
        typer.echo(f"warning: fig4 skipped: {err}")
        return
    result = run_fig4(data, is_safe, disc, cfg, seed, resolve_device(device))
    write_json({"task": task, "seed": seed, **result}, out / "fig4.json")
    finals = ", ".join(f"{b} {r['final_auroc']:.3f}" for b, r in result["backbones"].items())
    plot_fig4(result, f"{task}: supervised safe-vs-unsafe on {result['heldout_episodes']} held-out episodes "
                      f"(final AUROC {finals})", out / "fig4.png")
    typer.echo(f"held-out AUROC (supervised, {result['train_episodes']} training episodes): {finals}")


if __name__ == "__main__":
    app()

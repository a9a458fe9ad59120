"""Stage train_diffusion: classifier-free conditional DDPM over (state, action) segments, conditioned
on the episode's return and safety signal z (paper §4.2).

`--labels` picks the condition table: DSPO uses `label_safety`'s z; the upper-bound analysis
passes a table whose z is the oracle's true safety label (never a DSPO input).

The resumable training state lives under `.dvc/tmp/resume/` (not a DVC output: a `persist` output
would keep DVC's run-cache from restoring this stage on another machine) and is removed once the
model is written.
"""
from pathlib import Path

import typer

from dspo.core.artifacts import write_curve
from dspo.core.cli import RESUME_DIR, stage, task_dirs
from dspo.core.config import read_section, resolve_device
from dspo.data.schemas import LABELED, read_dataset, read_frame
from dspo.data.tasks import get_task
from dspo.learners.dspo.diffusion.trainer import (DiffusionConfig, SegmentDataset, save_diffusion_checkpoint,
                                                  train_diffusion)

app = typer.Typer(add_completion=False)


@app.command()
@stage
def main(task: str = typer.Option(..., help="task name from the registry"),
         labels: Path = typer.Option(..., help="per-episode (return, z) table (LABELED schema)"),
         out_dir: Path = typer.Option(..., help="folder for model.pt"),
         curve: Path = typer.Option(..., help="training-curve CSV"),
         seed: int = typer.Option(..., help="learner seed"),
         device: str = typer.Option("auto", help="auto | cpu | cuda[:n]"),
         params: Path = typer.Option(Path("params.yaml"), help="params file")) -> None:
    spec = get_task(task)
    cfg = read_section(DiffusionConfig, params)
    data = read_dataset(task_dirs(task)["data"] / "dataset.parquet", task=task)
    conditions = read_frame(LABELED, labels)
    dataset = SegmentDataset(data, conditions, cfg.horizon, spec.act_low, spec.act_high, cfg.return_scale)
    if dataset.n_short_episodes:
        typer.echo(f"note: {dataset.n_short_episodes} episodes shorter than horizon {cfg.horizon} give no segments")
    state_path = RESUME_DIR / out_dir.as_posix().lstrip("/") / "train_state.pt"
    model, history = train_diffusion(dataset, cfg, resolve_device(device), seed, state_path=state_path)
    save_diffusion_checkpoint(out_dir / "model.pt", model, cfg, dataset.normalizer, task,
                              {"labels": str(labels), "seed": seed})
    write_curve(history, curve)
    state_path.unlink(missing_ok=True)
    typer.echo(f"diffusion: {cfg.train_steps} steps on {dataset.n_windows} segments, final loss "
               f"{history['loss'].iloc[-1]:.4f} -> {out_dir / 'model.pt'}")


if __name__ == "__main__":
    app()

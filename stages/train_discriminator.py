"""Stage train_discriminator: SafetyTransformer (or MLP) with the return-agnostic vCLUB term."""
from pathlib import Path

import typer

from dspo.core.artifacts import write_curve
from dspo.core.cli import seed_dir, stage, task_dirs
from dspo.core.config import read_section, resolve_device
from dspo.data.schemas import read_dataset
from dspo.learners.dspo.discriminator import (DiscConfig, check_discriminator_data, save_discriminator_checkpoint,
                                              train_discriminator)
from dspo.learners.dspo.safety_transformer import n_parameters

app = typer.Typer(add_completion=False)


@app.command()
@stage
def main(task: str = typer.Option(..., help="task name from the registry"),
         seed: int = typer.Option(..., help="learner seed"),
         device: str = typer.Option("auto", help="auto | cpu | cuda[:n]"),
         params: Path = typer.Option(Path("params.yaml"), help="params file")) -> None:
    cfg = read_section(DiscConfig, params)
    dirs = task_dirs(task)
    data = read_dataset(dirs["data"] / "dataset.parquet", task=task)
    check_discriminator_data(data, cfg)  # refuse bad input before any training
    model, normalizer, history, selection = train_discriminator(data, cfg, resolve_device(device), seed)
    out = dirs["models"] / "discriminator" / seed_dir(seed) / "model.pt"
    save_discriminator_checkpoint(out, model, normalizer, cfg, task, {"selection": selection, "seed": seed})
    write_curve(history, dirs["reports"] / "train" / "discriminator" / f"{seed_dir(seed)}.csv")
    rank = selection["selected_holdout_rank"]
    typer.echo(f"{cfg.backbone} discriminator ({n_parameters(model):,} parameters), selected step "
               f"{selection['selected_step']} (held-out demo rank {'n/a' if rank is None else f'{rank:.3f}'}) -> {out}")


if __name__ == "__main__":
    app()

"""Stage train_discriminator: SafetyTransformer (or MLP) with the return-agnostic vCLUB term."""
from pathlib import Path

import typer

from dspo.cli import stage, task_dirs
from dspo.config import load_params, resolve_device, section
from dspo.curves import write_curve
from dspo.models.safety_transformer import n_parameters
from dspo.schemas import read_dataset
from dspo.train.discriminator import DiscConfig, check_discriminator_data, save_discriminator_checkpoint, train_discriminator

app = typer.Typer(add_completion=False)


@app.command()
@stage
def main(task: str = typer.Option(..., help="task name from the registry"),
         seed: int = typer.Option(0, help="seed"),
         device: str = typer.Option("auto", help="auto | cpu | cuda[:n]"),
         params: Path = typer.Option(Path("params.yaml"), help="params file")) -> None:
    cfg = DiscConfig.from_params(section(load_params(params), "disc"))
    dirs = task_dirs(task)
    data = read_dataset(dirs["data"] / "dataset.parquet", task=task)
    check_discriminator_data(data, cfg)  # refuse bad input before any training
    model, normalizer, history, selection = train_discriminator(data, cfg, resolve_device(device), seed)
    out = dirs["models"] / "discriminator" / "model.pt"
    save_discriminator_checkpoint(out, model, normalizer, cfg, task, {"selection": selection, "seed": seed})
    write_curve(history, dirs["reports"] / "train" / "discriminator.csv")
    typer.echo(f"{cfg.backbone} discriminator ({n_parameters(model):,} parameters), selected step "
               f"{selection['selected_step']} (held-out demo rank {selection['selected_holdout_rank']:.3f}) -> {out}")


if __name__ == "__main__":
    app()

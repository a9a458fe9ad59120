"""Stage train_discriminator: the chain's safety scorer — by default the SafetyTransformer (or MLP) discriminator
with the return-agnostic vCLUB term; with `disc.scorer: rgm`, RGM's reward correction at the RGM baseline's `rgm.*`."""
from pathlib import Path

import typer

from dspo.core.artifacts import write_curve
from dspo.core.cli import seed_dir, stage, task_dirs
from dspo.core.config import load_params, read_section, resolve_device
from dspo.data.schemas import read_dataset
from dspo.data.tasks import get_task
from dspo.learners.dspo.discriminator import (DiscConfig, check_discriminator_data, save_discriminator_checkpoint,
                                              train_discriminator)
from dspo.learners.dspo.rgm_scorer import scorer_rgm_config, train_crossfit_rgm_scorer, train_rgm_scorer
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
    out = dirs["models"] / "discriminator" / seed_dir(seed) / "model.pt"
    curve_path = dirs["reports"] / "train" / "discriminator" / f"{seed_dir(seed)}.csv"
    if cfg.scorer == "rgm":
        rgm_cfg = scorer_rgm_config(cfg, load_params(params), params)  # refuse bad settings before reading data
        spec = get_task(task)
        data = read_dataset(dirs["data"] / "dataset.parquet", task=task)
        if cfg.demo_folds > 1:
            scorer, history = train_crossfit_rgm_scorer(data, spec.act_low, spec.act_high, rgm_cfg, cfg.demo_folds,
                                                        resolve_device(device), seed)
        else:
            scorer, history = train_rgm_scorer(data, spec.act_low, spec.act_high, rgm_cfg, resolve_device(device), seed)
        scorer.save(out, task, {"seed": seed})
        write_curve(history, curve_path)
        typer.echo(f"{scorer.name} scorer ({rgm_cfg.disc_steps} classifier + {rgm_cfg.steps} bi-level steps"
                   f"{'' if cfg.demo_folds == 1 else f', x {cfg.demo_folds} folds'}) -> {out}")
        return
    data = read_dataset(dirs["data"] / "dataset.parquet", task=task)
    check_discriminator_data(data, cfg)  # refuse bad input before any training
    model, normalizer, history, selection = train_discriminator(data, cfg, resolve_device(device), seed)
    save_discriminator_checkpoint(out, model, normalizer, cfg, task, {"selection": selection, "seed": seed})
    write_curve(history, curve_path)
    rank = selection["selected_holdout_rank"]
    typer.echo(f"{cfg.backbone} discriminator ({n_parameters(model):,} parameters), selected step "
               f"{selection['selected_step']} (held-out demo rank {'n/a' if rank is None else f'{rank:.3f}'}) -> {out}")


if __name__ == "__main__":
    app()

"""Stage generate: sample safe, high-return segments from the conditional diffusion model (paper §4.2).

Return condition drawn from the safe demos' return range (or up to the best episode labeled safe,
`generate.return_range`), z = the smallest safe-demo z (App. D.1); both overridable in params
(`generate.return_condition`, `generate.z_condition`). With `generate.keep_fraction` the chain's
scorer (`--discriminator`: the discriminator, or RGM's classifier under `disc.scorer: rgm`) scores every generated segment and only the most-safe fraction is
written; the true-label chain has no scorer for generated segments and keeps them all (the report says so).
"""
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from dspo.core.artifacts import write_json
from dspo.core.cli import seed_dir, stage, task_dirs
from dspo.core.config import read_section, resolve_device
from dspo.data.schemas import GENERATED, LABELED, SAFE_DEMO, read_dataset, read_frame, write_table
from dspo.data.tasks import get_task
from dspo.evaluation.generation import generation_report, plot_generation
from dspo.learners.dspo.diffusion.sampling import GenerateConfig, condition_range, draw_conditions, most_safe
from dspo.learners.dspo.diffusion.trainer import load_diffusion_checkpoint
from dspo.learners.dspo.scorer import load_scorer

app = typer.Typer(add_completion=False)


@app.command()
@stage
def main(task: str = typer.Option(..., help="task name from the registry"),
         labels: Path = typer.Option(..., help="per-episode (return, z) table the model was conditioned on"),
         model: Path = typer.Option(..., help="diffusion checkpoint"),
         out: Path = typer.Option(..., help="generated.parquet to write"),
         report: Path = typer.Option(..., help="quality report JSON (a PNG is written beside it)"),
         seed: int = typer.Option(..., help="learner seed (draws the conditions and the noise)"),
         discriminator: Optional[Path] = typer.Option(None, help="the chain's discriminator (generate.keep_fraction)"),
         device: str = typer.Option("auto", help="auto | cpu | cuda[:n]"),
         params: Path = typer.Option(Path("params.yaml"), help="params file")) -> None:
    spec = get_task(task)
    gen_cfg = read_section(GenerateConfig, params)
    bundle = load_diffusion_checkpoint(model, task, spec.obs_dim, spec.act_dim, spec.act_low, spec.act_high)
    labeled = read_frame(LABELED, labels)
    is_demo = (labeled["split"] == SAFE_DEMO).to_numpy()
    span = condition_range(gen_cfg, labeled["return"].to_numpy(), labeled["z"].to_numpy(), is_demo)
    returns, z = draw_conditions(gen_cfg, span, float(labeled.loc[is_demo, "z"].min()), seed)
    obs, act, n_clipped = bundle.sample(returns, z, gen_cfg, resolve_device(device), seed)
    n_sampled = obs.shape[0]
    filtered_by = None
    if gen_cfg.keep_fraction is not None and discriminator is not None:
        scorer, _ = load_scorer(discriminator, task=task, obs_dim=spec.obs_dim, act_dim=spec.act_dim,
                                device=resolve_device(device))
        kept = most_safe(scorer.score_segments(obs, act), gen_cfg.keep_fraction)
        obs, act, returns, z = obs[kept], act[kept], returns[kept], z[kept]
        filtered_by = str(discriminator)
    n, horizon = obs.shape[:2]
    write_table(GENERATED, {
        "segment_id": np.repeat(np.arange(n), horizon), "step": np.tile(np.arange(horizon), n),
        "obs": obs.reshape(n * horizon, -1), "action": act.reshape(n * horizon, -1),
        "return_condition": np.repeat(returns.astype(np.float64), horizon),
        "z_condition": np.repeat(z.astype(np.float64), horizon),
    }, out, task=task, obs_dim=spec.obs_dim, act_dim=spec.act_dim)
    data = read_dataset(task_dirs(task)["data"] / "dataset.parquet", task=task)
    metrics, points = generation_report(data, obs.reshape(n * horizon, -1), act.reshape(n * horizon, -1), n_clipped,
                                        gen_cfg.report_points, seed)
    metrics.update({"segments": int(n), "segments_sampled": int(n_sampled), "keep_fraction": gen_cfg.keep_fraction,
                    "filtered_by": filtered_by, "horizon": int(horizon), "guidance": gen_cfg.guidance, "sampler": gen_cfg.sampler,
                    "sampling_steps": gen_cfg.sampling_steps, "z_condition": float(z.mean()),
                    "return_condition_min": float(returns.min()), "return_condition_max": float(returns.max())})
    write_json(metrics, report)
    plot_generation(points, metrics, f"{task}: generated vs real states", report.with_suffix(".png"))
    typer.echo(f"generated {n} segments x {horizon} steps (z = {z.mean():.3f}{' (mean, random)' if gen_cfg.z_condition == 'random' else ''}, {gen_cfg.sampler}-{gen_cfg.sampling_steps}, "
               f"w = {gen_cfg.guidance}); NN-distance ratio {metrics['nn_distance_ratio']:.2f} -> {out}")


if __name__ == "__main__":
    app()

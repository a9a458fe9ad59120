"""Stage analysis_labeling: how well z labels safety (Table 2 metrics) beside honest yardsticks.

The only discriminator stage allowed the oracle; nothing downstream of DSPO depends on its outputs.
"""
import numpy as np
import pandas as pd
import torch
import typer

from dspo.core.artifacts import atomic_path, write_json
from dspo.core.cli import seed_dir, stage, task_dirs
from dspo.core.config import seed_everything
from dspo.core.errors import DataError
from dspo.data.schemas import LABELED, ORACLE, SAFE_DEMO, read_dataset, read_frame
from dspo.data.tasks import get_task
from dspo.evaluation.labeling import TRUE_LABEL_ROW, labeling_rows, plot_labeling, score_metrics
from dspo.learners.dspo.discriminator import score_episodes
from dspo.learners.dspo.rgm_scorer import CROSSFIT_KIND, SCORER_KIND
from dspo.learners.dspo.scorer import load_scorer
from dspo.learners.dspo.safety_transformer import build_discriminator

app = typer.Typer(add_completion=False)
METRIC_COLUMNS = ["auroc", "auroc_within_agent", "recall", "accuracy", "f1", "f1_best", "pearson_safety",
                  "pearson_return"]


@app.command()
@stage
def main(task: str = typer.Option(..., help="task name from the registry"),
         seed: int = typer.Option(..., help="learner seed (that seed's discriminator and labels)")) -> None:
    spec = get_task(task)
    dirs = task_dirs(task)
    data = read_dataset(dirs["data"] / "dataset.parquet", task=task)
    labeled = read_frame(LABELED, dirs["data"] / "dspo" / seed_dir(seed) / "labeled.parquet")
    oracle = read_frame(ORACLE, dirs["data"] / "oracle.parquet").groupby("episode_id").first()
    episodes = labeled.set_index("episode_id").join(oracle[["is_safe", "source_agent", "cost_return"]], how="inner")
    if len(episodes) != len(labeled):
        raise DataError("labeled.parquet and oracle.parquet disagree on the episode ids (rerun collect and label_safety)")
    threshold = float(episodes.loc[episodes["split"] == SAFE_DEMO, "z"].min())

    rows = labeling_rows(data, episodes, episodes["z"].to_numpy(), threshold)
    model_path = dirs["models"] / "discriminator" / seed_dir(seed) / "model.pt"
    scorer, ckpt = load_scorer(model_path, task=task, obs_dim=data.obs_dim, act_dim=data.act_dim)
    demo_folds = len(ckpt["members"]) if ckpt["kind"] == CROSSFIT_KIND else 1
    if ckpt["kind"] in (SCORER_KIND, CROSSFIT_KIND):
        scorer_kind, backbone, mi_weight = "rgm", None, None  # RGM's correction: no untrained-network yardstick, no vCLUB
    else:
        cfg = scorer.cfg  # a DiscriminatorScorer: its config and normalizer, from the one checkpoint read
        scorer_kind, backbone, mi_weight = "discriminator", cfg.backbone, cfg.mi_weight
        seed_everything(int(ckpt.get("seed", 0)))  # the same initialization the trained network started from
        untrained = build_discriminator(cfg, data.obs_dim, data.act_dim).eval()
        with torch.no_grad():
            z0 = score_episodes(untrained, scorer.normalizer, data, cfg.context_len).set_index("episode_id")["z"]
        rows["yardstick: untrained network"] = score_metrics(z0.reindex(episodes.index).to_numpy(), episodes)

    table = pd.DataFrame(rows).T.reindex(columns=METRIC_COLUMNS)
    metrics = {k: v for k, v in rows["discriminator"].items()}
    best_trivial = max(rows[r]["auroc"] for r in rows if r.startswith("yardstick") and not np.isnan(rows[r]["auroc"]))
    metrics.update({
        "threshold_rule": "z >= min z over the safe demos (paper App. D.1)"
                          + ("" if demo_folds == 1 else f", each demo scored out of fold ({demo_folds} folds)"),
        "threshold": threshold,
        "auroc_margin_over_best_yardstick": metrics["auroc"] - best_trivial,
        # what a perfect score's pearson(z, return) would be here: the attainable floor of |pearson_return|
        "pearson_return_true_label": rows[TRUE_LABEL_ROW]["pearson_return"],
        "scorer": scorer_kind, "backbone": backbone, "mi_weight": mi_weight, "demo_folds": demo_folds,
        "unlabeled_episodes": int((episodes["split"] != SAFE_DEMO).sum()),
        "yardsticks": {name: rows[name] for name in rows if name.startswith("yardstick")},
    })
    metrics["seed"] = seed
    out = dirs["reports"] / "labeling" / seed_dir(seed)
    write_json(metrics, out.with_suffix(".json"))
    with atomic_path(out.with_suffix(".md")) as tmp:
        tmp.write_text(f"# {task}: safety labeling on D^U ({metrics['unlabeled_episodes']} episodes)\n\n"
                       f"Decision rule for recall/accuracy/F1: z >= {threshold:.4f} (the smallest demo z"
                       f"{'' if demo_folds == 1 else f', each demo scored by the fold scorer that did not train on it'}). "
                       f"Yardsticks are threshold-free scores (AUROC, correlations). `f1_best`: the best F1 of any "
                       f"threshold, picked with the oracle labels (the ranking's ceiling, not a method number; z's is at "
                       f"z >= {metrics['threshold_f1_best']:.4f}). The reference row scores the true label itself: a "
                       f"perfect score's pearson with return is {metrics['pearson_return_true_label']:.3f} on this "
                       f"data.\n\n"
                       + table.to_markdown(floatfmt=".3f") + "\n")
    plot_labeling(episodes.reset_index(), threshold, spec.cost_limit,
                  f"{task} seed {seed}: {scorer.name}" + ("" if mi_weight is None else f", mi_weight={mi_weight:g}")
                  + f": AUROC {metrics['auroc']:.3f}",
                  out.with_suffix(".png"), oracle_threshold=metrics["threshold_f1_best"])
    typer.echo(table.to_string(float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    app()

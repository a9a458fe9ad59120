"""Stage analysis_rgm_costs: how well RGM's reward correction labels safety (the cost CDT-V uses).

The DSPO paper (§5) suspects transition-level safety signals are hard to reconstruct; this
measures it with the oracle: per transition, AUROC of the estimated cost for "the true step
cost is > 0"; per episode, the Table-2 metrics of minus the summed estimated cost on D^U (the report
puts it beside the discriminator's AUROC). Analysis only: nothing trains on its output.
"""
import pandas as pd
import typer

from dspo.core.artifacts import write_json
from dspo.core.cli import seed_dir, stage, task_dirs
from dspo.core.errors import DataError
from dspo.data.schemas import ORACLE, read_dataset, read_frame
from dspo.evaluation.labeling import auroc, pearson, score_metrics
from dspo.learners.baselines.cdt_v import corrections, estimated_costs
from dspo.learners.baselines.rgm import RewardCorrection

app = typer.Typer(add_completion=False)


@app.command()
@stage
def main(task: str = typer.Option(..., help="task name from the registry"),
         seed: int = typer.Option(..., help="learner seed of the RGM run")) -> None:
    dirs = task_dirs(task)
    data = read_dataset(dirs["data"] / "dataset.parquet", task=task)
    oracle = read_frame(ORACLE, dirs["data"] / "oracle.parquet")
    steps = pd.DataFrame({"episode_id": data.episode_id, "step": data.step})
    steps = steps.merge(oracle[["episode_id", "step", "cost"]], on=["episode_id", "step"], how="left")
    if steps["cost"].isna().any():
        raise DataError("dataset.parquet and oracle.parquet disagree on (episode, step) rows (rerun collect)")
    correction, (obs_norm, bounds) = RewardCorrection.load(dirs["models"] / "rgm" / seed_dir(seed) / "reward_correction.pt", task)
    delta = corrections(correction, obs_norm, bounds, data.obs, data.action, data.reward)
    cost = estimated_costs(delta, float(delta.mean()), float(delta.std()) or 1.0)

    episodes = oracle.groupby("episode_id").first()[["is_safe", "source_agent", "cost_return"]]
    per_episode = pd.DataFrame({"episode_id": data.episode_id, "est_cost": cost, "reward": data.reward,
                                "split": data.split}).groupby("episode_id").agg(
        est_cost=("est_cost", "sum"), ret=("reward", "sum"), split=("split", "first"))
    episodes = per_episode.join(episodes).rename(columns={"ret": "return"})
    metrics = {
        "transition_auroc_cost_positive": auroc(cost, steps["cost"].to_numpy() > 0),
        "transition_pearson_cost": pearson(cost, steps["cost"].to_numpy()),
        "episode": score_metrics(-episodes["est_cost"].to_numpy(), episodes),
        "episode_pearson_cost_return": pearson(episodes["est_cost"].to_numpy(), episodes["cost_return"].to_numpy()),
    }
    metrics["seed"] = seed
    write_json(metrics, dirs["reports"] / "rgm_costs" / f"{seed_dir(seed)}.json")
    typer.echo(f"RGM-estimated cost: transition AUROC {metrics['transition_auroc_cost_positive']:.3f}, "
               f"episode AUROC (safe, D^U) {metrics['episode']['auroc']:.3f}")


if __name__ == "__main__":
    app()

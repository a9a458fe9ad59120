"""Labeling analysis (paper Table 2) with honest yardsticks beside it. Oracle allowed here only.

Metrics are computed on D^U (the demos were labeled by construction):
- `auroc`: z as a score for true safety (rank statistic, threshold-free);
- `recall`, `accuracy`, `f1`: with the decision rule *z >= the smallest z of a safe demo* -- the
  same rule that picks the generation condition (paper App. D.1): an episode the discriminator
  scores at least as safe as some demo is called safe. `*_at_half` use z >= 0.5 instead;
- `f1_best` / `threshold_f1_best`: the best F1 *any* threshold on the score reaches, the threshold chosen with the
  oracle labels -- not a method number (no learner may pick its rule this way) but the ceiling of the ranking: an F1
  below it is the decision rule's shortfall, not the score's;
- `pearson_safety` (z vs the 0/1 safety label), `pearson_return` (z vs the episode return);
- `auroc_within_agent`: AUROC inside each behavior source that has both safe and unsafe episodes,
  averaged -- a score that only learned "which agent" or "how much return" gets ~0.5 here.
Yardsticks scored the same way: the return itself (both signs), the negative distance of an
episode's feature summary to its nearest demo, and the untrained network. One reference row scores the true label
itself (a perfect score): its `pearson_return` is what any score that labels perfectly must show on this data, so a
return-agnostic target (|pearson_return| small) is attainable only as far as safety itself is return-agnostic here.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from dspo.evaluation.generation import nearest_distances
from dspo.data.schemas import SAFE_DEMO, UNLABELED, StepData


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mann-Whitney AUROC with ties counted half; NaN when one class is missing."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=bool)
    n_pos, n_neg = labels.sum(), (~labels).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = pd.Series(scores).rank(method="average").to_numpy()
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def classification(pred: np.ndarray, labels: np.ndarray) -> dict:
    pred, labels = np.asarray(pred, dtype=bool), np.asarray(labels, dtype=bool)
    tp = (pred & labels).sum()
    precision = tp / pred.sum() if pred.sum() else 0.0
    recall = tp / labels.sum() if labels.sum() else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"recall": float(recall), "precision": float(precision), "f1": float(f1),
            "accuracy": float((pred == labels).mean())}


def best_f1(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(best F1 over every threshold `score >= t`, that t); ties share a side; NaN without positives.

    Sorted once: predicting the top k positive gives F1 = 2 TP_k / (k + P), evaluated at the last index of each tie run.
    """
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=bool)
    n_pos = int(labels.sum())
    if n_pos == 0:  # also the empty case
        return float("nan"), float("nan")
    order = np.argsort(-scores, kind="stable")
    s, tp = scores[order], np.cumsum(labels[order])
    cut = np.flatnonzero(np.r_[s[1:] != s[:-1], True])  # last index of each run of equal scores
    f1 = 2.0 * tp[cut] / (cut + 1 + n_pos)
    best = int(np.argmax(f1))
    return float(f1[best]), float(s[cut[best]])


def within_agent_auroc(scores: np.ndarray, labels: np.ndarray, agents: np.ndarray) -> dict[str, float]:
    out = {}
    for agent in sorted(set(agents)):
        mask = agents == agent
        value = auroc(scores[mask], labels[mask])
        if not np.isnan(value):
            out[str(agent)] = value
    return out


def score_metrics(scores: np.ndarray, episodes: pd.DataFrame, threshold: float | None = None) -> dict:
    """All Table-2 metrics of one per-episode score on the D^U rows of `episodes`."""
    unl = episodes["split"].to_numpy() == UNLABELED
    s, safe = np.asarray(scores)[unl], episodes["is_safe"].to_numpy()[unl]
    per_agent = within_agent_auroc(s, safe, episodes["source_agent"].to_numpy()[unl])
    metrics = {
        "auroc": auroc(s, safe),
        "auroc_within_agent": float(np.mean(list(per_agent.values()))) if per_agent else float("nan"),
        "pearson_safety": pearson(s, safe),
        "pearson_return": pearson(s, episodes["return"].to_numpy()[unl]),
    }
    metrics["f1_best"], metrics["threshold_f1_best"] = best_f1(s, safe)
    if threshold is not None:
        metrics.update(classification(s >= threshold, safe))
    return metrics


TRUE_LABEL_ROW = "reference: true label (a perfect score)"


def labeling_rows(data: StepData, episodes: pd.DataFrame, z: np.ndarray, threshold: float) -> dict[str, dict]:
    """Table 2 for one score: the discriminator's metrics (at `threshold` and at 0.5) beside the trivial yardsticks.

    `episodes`: one row per episode (index episode_id) with split, return, is_safe, source_agent."""
    rows = {"discriminator": score_metrics(z, episodes, threshold)}
    rows["discriminator"].update({f"{k}_at_half": v for k, v in score_metrics(z, episodes, 0.5).items()
                                  if k in ("recall", "accuracy", "f1")})
    ret = episodes["return"].to_numpy()
    rows["yardstick: -return"] = score_metrics(-ret, episodes)
    rows["yardstick: +return"] = score_metrics(ret, episodes)
    rows["yardstick: -NN distance to D^S"] = score_metrics(
        nn_distance_to_demos(data).reindex(episodes.index).to_numpy(), episodes)
    rows[TRUE_LABEL_ROW] = score_metrics(episodes["is_safe"].to_numpy(dtype=np.float64), episodes, threshold=0.5)
    return rows


def episode_features(data: StepData) -> pd.DataFrame:
    """Per-episode mean and std of the standardized (s, a) features: the nearest-neighbour yardstick's space."""
    feats = np.concatenate([data.obs, data.action], axis=1).astype(np.float64)
    feats = (feats - feats.mean(0)) / np.where(feats.std(0) > 0, feats.std(0), 1.0)
    frame = pd.DataFrame(feats).groupby(data.episode_id)
    return pd.concat([frame.mean(), frame.std(ddof=0).add_suffix("_std")], axis=1)


def nn_distance_to_demos(data: StepData) -> pd.Series:
    """Negative Euclidean distance of each episode's feature summary to its nearest safe demo."""
    feats = episode_features(data)
    demo_ids = np.unique(data.episode_id[data.split == SAFE_DEMO])
    dist = nearest_distances(feats.to_numpy(), feats.loc[demo_ids].to_numpy()).astype(np.float64)
    dist[np.isin(feats.index.to_numpy(), demo_ids)] = 0.0
    return pd.Series(-dist, index=feats.index)


def plot_labeling(episodes: pd.DataFrame, threshold: float, cost_limit: float, title: str, path,
                  oracle_threshold: float | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dspo.core.artifacts import save_figure

    fig, ax = plt.subplots(figsize=(7, 5))
    unl = episodes[episodes["split"] == UNLABELED]
    for safe, color, label in ((True, "tab:green", f"D^U safe (cost ≤ {cost_limit:g})"), (False, "tab:red", "D^U unsafe")):
        part = unl[unl["is_safe"] == safe]
        ax.scatter(part["return"], part["z"], s=12, alpha=0.6, c=color, label=f"{label} ({len(part)})")
    demos = episodes[episodes["split"] == SAFE_DEMO]
    ax.scatter(demos["return"], demos["z"], s=70, marker="*", c="gold", edgecolors="k", label="D^S demos", zorder=3)
    ax.axhline(threshold, color="k", ls="--", lw=1, label=f"decision: z ≥ min demo z = {threshold:.3f}")
    if oracle_threshold is not None and np.isfinite(oracle_threshold):
        ax.axhline(oracle_threshold, color="tab:blue", ls=":", lw=1.2,
                   label=f"best-F1 threshold, picked with the oracle = {oracle_threshold:.3f}")
    ax.set_xlabel("episode reward return")
    ax.set_ylabel("safety signal z = D(τ)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    save_figure(fig, path)

"""The results table and reward-vs-cost scatter over every evaluated algorithm of a task."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from dspo.core.artifacts import atomic_path, read_json, save_figure
from dspo.data.tasks import TaskSpec
from dspo.learners.registry import ANALYSIS, algorithms


def collect_results(eval_files: list[Path]) -> pd.DataFrame:
    """One row per evaluated algorithm, in the order of `eval_files` (the params list order)."""
    registry = algorithms()
    rows = []
    for path in eval_files:
        m = read_json(path)
        alg = registry.get(m["algo"])
        rows.append({"algo": m["algo"], "name": alg.display if alg else m["algo"],
                     "analysis": alg is not None and alg.role == ANALYSIS,
                     "normalized_reward": m["normalized_reward"], "normalized_reward_std": m["normalized_reward_std"],
                     "normalized_cost": m["normalized_cost"], "normalized_cost_std": m["normalized_cost_std"],
                     "reward": m["reward"], "cost": m["cost"], "episodes": m["episodes"], "safe": m["safe"]})
    return pd.DataFrame(rows)


def results_markdown(spec: TaskSpec, frame: pd.DataFrame) -> str:
    safe = frame[frame["safe"] & ~frame["analysis"]]  # an analysis row never takes the mark
    best = safe["normalized_reward"].idxmax() if len(safe) else None
    lines = [f"# {spec.name}: results (κ = {spec.cost_limit:g}, {int(frame['episodes'].max())} evaluation episodes)", "",
             "Normalized reward (R − R_min)/(R_max − R_min) and normalized cost C/κ, mean ± std over episodes; "
             "safe = mean normalized cost ≤ 1. **Bold**: best reward among safe policies.", "",
             "| algorithm | normalized reward | normalized cost | safe | reward | cost |", "|---|---|---|---|---|---|"]
    for idx, row in frame.iterrows():
        reward = f"{row.normalized_reward:.3f} ± {row.normalized_reward_std:.3f}"
        if idx == best:
            reward = f"**{reward}**"
        lines.append(f"| {row['name']} | {reward} | {row.normalized_cost:.2f} ± {row.normalized_cost_std:.2f} | "
                     f"{'yes' if row.safe else 'no'} | {row.reward:.1f} | {row.cost:.1f} |")
    return "\n".join(lines) + "\n"


def write_results(spec: TaskSpec, eval_files: list[Path], md_path: Path, png_path: Path) -> pd.DataFrame:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = collect_results(eval_files)
    with atomic_path(md_path) as tmp:
        tmp.write_text(results_markdown(spec, frame))
    fig, ax = plt.subplots(figsize=(8.5, 4.8))
    markers = "osD^v<>pXh*"
    for i, (_, row) in enumerate(frame.iterrows()):
        ax.errorbar(row.normalized_cost, row.normalized_reward, xerr=row.normalized_cost_std,
                    yerr=row.normalized_reward_std, fmt=markers[i % len(markers)], capsize=3, ms=7,
                    mfc=None if row.safe else "white", label=f"{row['name']}{'' if row.safe else ' (unsafe)'}")
    ax.axvspan(ax.get_xlim()[0], 1.0, color="tab:green", alpha=0.08, lw=0, label="safe region")
    ax.axvline(1.0, color="k", ls="--", lw=1, label="cost limit κ (normalized cost 1)")
    ax.set_xlabel("normalized cost C/κ  (mean ± std over episodes)")
    ax.set_ylabel("normalized reward")
    ax.set_title(f"{spec.name}: reward vs cost per algorithm (hollow = unsafe)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    save_figure(fig, png_path)
    return frame

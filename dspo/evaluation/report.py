"""Per-task results over learner seeds: Table-1 rows with bootstrap CIs, paired comparisons, Table-2 rows.

A row is one (task, algorithm): the per-seed means of a block's episodes, their mean over seeds
and a 95 % percentile-bootstrap CI (`stats.mean_ci`), and the fraction of seeds whose policy is
safe (mean normalized cost <= 1). The committed tables read the *test* block; the same numbers on
the *tuning* block go to `tuning.md`, the only place a knob may be chosen from. Analysis rows
(they read the oracle) are listed apart and never take the bold "best safe" mark. The field names
of a row are the suite's Table-1 contract (`reports/suite/table1.json`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from dspo.core.artifacts import read_json
from dspo.core.cli import seed_dir
from dspo.core.errors import MissingArtifactError
from dspo.data.tasks import TaskSpec
from dspo.evaluation.stats import mean_ci, probability_of_improvement_ci
from dspo.learners.registry import ANALYSIS, METHOD, algorithms

TABLE2_METRICS = ("auroc", "auroc_within_agent", "f1", "f1_best", "pearson_return", "pearson_return_true_label")


def _read(path: Path, producer: str) -> dict:
    if not path.exists():
        raise MissingArtifactError(f"{path} is missing (run {producer}, e.g. `dvc repro`)")
    return read_json(path)


def _ci(values: list[float]) -> list[float] | None:
    """[lo, hi] over seeds; None for a single seed (a one-run interval would claim certainty it lacks)."""
    if len(values) < 2:
        return None
    _, lo, hi = mean_ci(values)
    return [lo, hi]


def task_rows(spec: TaskSpec, runs: list[tuple[str, list[int]]], eval_dir: Path, block: str) -> list[dict]:
    """One Table-1 row per (algorithm, seeds) in `runs`, from `eval_dir/<algo>/seed<k>.json` of `block`."""
    registry = algorithms()
    rows = []
    for algo, seeds in runs:
        per_seed = [_read(eval_dir / algo / f"{seed_dir(s)}.json", f"evaluate@{algo}-{s}")[block] for s in seeds]
        rewards = [m["normalized_reward"] for m in per_seed]
        costs = [m["normalized_cost"] for m in per_seed]
        alg = registry.get(algo)
        rows.append({
            "task": spec.name, "algo": algo, "name": alg.display if alg else algo,
            "role": alg.role if alg else "unknown", "seeds": list(seeds),
            "episodes_per_seed": int(min(m["episodes"] for m in per_seed)),
            "reward_mean": float(np.mean(rewards)), "reward_ci": _ci(rewards),
            "cost_mean": float(np.mean(costs)), "cost_ci": _ci(costs),
            "safe_seed_fraction": float(np.mean([c <= 1.0 for c in costs])),
            "safe": bool(np.mean(costs) <= 1.0),
            "reward_per_seed": rewards, "cost_per_seed": costs,
            "raw_reward_mean": float(np.mean([m["reward"] for m in per_seed])),
            "raw_cost_mean": float(np.mean([m["cost"] for m in per_seed])),
        })
    return rows


def comparisons(rows: list[dict]) -> list[dict]:
    """P(method > other) on normalized reward over learner seeds (rliable's probability of improvement)."""
    out = []
    for m in (r for r in rows if r["role"] == METHOD):
        for other in (r for r in rows if r is not m and r["role"] != ANALYSIS):
            p, lo, hi = probability_of_improvement_ci(m["reward_per_seed"], other["reward_per_seed"])
            out.append({"task": m["task"], "algo": m["algo"], "versus": other["algo"], "poi": p, "poi_ci": [lo, hi],
                        "versus_safe": other["safe"], "seeds": [len(m["seeds"]), len(other["seeds"])]})
    return out


def best_safe(rows: list[dict]) -> str | None:
    """The method or baseline with the highest mean reward among the safe ones (never an analysis)."""
    safe = [r for r in rows if r["safe"] and r["role"] != ANALYSIS]
    return max(safe, key=lambda r: r["reward_mean"])["algo"] if safe else None


def fmt_ci(mean: float, ci: list[float] | None, digits: int) -> str:
    return f"{mean:.{digits}f} [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]" if ci else f"{mean:.{digits}f} (1 seed)"


def _row_line(r: dict, bold: bool) -> str:
    reward = fmt_ci(r["reward_mean"], r["reward_ci"], 3)
    reward = f"**{reward}**" if bold else reward
    cost = fmt_ci(r["cost_mean"], r["cost_ci"], 2) + ("" if r["safe"] else " ✗")
    return (f"| {r['name']} | {len(r['seeds'])} | {reward} | {cost} | {r['safe_seed_fraction']:.2f} | "
            f"{r['raw_reward_mean']:.1f} | {r['raw_cost_mean']:.1f} |")


def results_markdown(spec: TaskSpec, rows: list[dict], comps: list[dict], block: str) -> str:
    best = best_safe(rows)
    head = ["| algorithm | seeds | normalized reward [95 % CI] | normalized cost [95 % CI] | safe seeds | reward | cost |",
            "|---|---|---|---|---|---|---|"]
    episodes = min(r["episodes_per_seed"] for r in rows)
    lines = [f"# {spec.name}: {block} block ({episodes} episodes per seed, κ = {spec.cost_limit:g})", "",
             "Per seed: the mean over the block's episodes; shown: the mean over learner seeds with a 95 % "
             "percentile-bootstrap CI over seeds (scipy). Normalized reward (R − R_min)/(R_max − R_min), normalized "
             "cost C/κ; safe = mean normalized cost ≤ 1 (✗: unsafe); safe seeds = fraction of seeds whose policy is "
             "safe. **Bold**: best reward among safe methods and baselines.", "", *head]
    lines += [_row_line(r, r["algo"] == best) for r in rows if r["role"] != ANALYSIS]
    analyses = [r for r in rows if r["role"] == ANALYSIS]
    if analyses:
        lines += ["", "Analyses (they read the oracle: not methods, never bold):", "", *head]
        lines += [_row_line(r, False) for r in analyses]
    if comps:
        lines += ["", "Probability of improvement in normalized reward over learner seeds, P(method > other) with a "
                  "95 % bootstrap CI (Agarwal et al. 2021; runs of each algorithm resampled apart):", "",
                  "| method | versus | P(improvement) [95 % CI] | other is safe | seeds (method, other) |",
                  "|---|---|---|---|---|"]
        names = {r["algo"]: r["name"] for r in rows}
        lines += [f"| {names[c['algo']]} | {names[c['versus']]} | {c['poi']:.2f} [{c['poi_ci'][0]:.2f}, "
                  f"{c['poi_ci'][1]:.2f}] | {'yes' if c['versus_safe'] else 'no'} | {c['seeds'][0]}, {c['seeds'][1]} |"
                  for c in comps]
    return "\n".join(lines) + "\n"


def plot_rows(ax, rows: list[dict], title: str) -> None:
    """Reward vs cost per algorithm with CI bars over seeds (hollow = unsafe; analyses as crosses)."""
    markers = "osD^v<>pXh*"
    for i, r in enumerate(rows):
        xerr = None if r["cost_ci"] is None else [[r["cost_mean"] - r["cost_ci"][0]], [r["cost_ci"][1] - r["cost_mean"]]]
        yerr = None if r["reward_ci"] is None else [[r["reward_mean"] - r["reward_ci"][0]],
                                                    [r["reward_ci"][1] - r["reward_mean"]]]
        marker = "x" if r["role"] == ANALYSIS else markers[i % len(markers)]
        ax.errorbar(r["cost_mean"], r["reward_mean"], xerr=xerr, yerr=yerr, fmt=marker, capsize=3, ms=7,
                    mfc=None if r["safe"] else "white", label=f"{r['name']}{'' if r['safe'] else ' (unsafe)'}")
    ax.axvline(1.0, color="k", ls="--", lw=1)
    ax.axvspan(min(0.0, ax.get_xlim()[0]), 1.0, color="tab:green", alpha=0.08, lw=0)
    ax.set_xlabel("normalized cost C/κ")
    ax.set_ylabel("normalized reward")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)


def plot_results(spec: TaskSpec, rows: list[dict], block: str, png_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dspo.core.artifacts import save_figure

    fig, ax = plt.subplots(figsize=(8.5, 4.8))
    plot_rows(ax, rows, f"{spec.name} ({block} block): mean over learner seeds, 95 % CI; dashed: cost limit κ")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    save_figure(fig, png_path)


def labeling_row(spec: TaskSpec, labeling_files: list[Path], rgm_files: list[Path]) -> dict:
    """Table-2 row of a task: labeling metrics averaged over learner seeds, beside the yardsticks' AUROC."""
    per_seed = [_read(p, "analysis_labeling") for p in labeling_files]
    row = {"task": spec.name, "seeds": [m["seed"] for m in per_seed]}
    for key in TABLE2_METRICS:
        values = [float(m.get(key, np.nan)) for m in per_seed]  # f1_best: absent from reports before it existed
        row[key] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
        row[f"{key}_per_seed"] = values
    row["auroc_ci"] = _ci([m["auroc"] for m in per_seed])
    names = per_seed[0]["yardsticks"].keys()
    row["yardsticks"] = {n.removeprefix("yardstick: "): float(np.nanmean([m["yardsticks"][n]["auroc"] for m in per_seed]))
                         for n in names}
    rgm = [_read(p, "analysis_rgm_costs")["episode"]["auroc"] for p in rgm_files]
    if rgm:
        row["yardsticks"]["RGM-estimated cost"] = float(np.nanmean(rgm))
    row["z_from"], row["mi_weight"] = z_source(per_seed[0]), per_seed[0]["mi_weight"]
    return row


def _num(value: float) -> str:
    """A metric a row lacks prints as "n/a": an older report (its task not rerun since the metric was added), or a
    yardstick that does not apply to its scorer (no untrained network behind RGM's correction)."""
    return "n/a" if not np.isfinite(value) else f"{value:.3f}"


def z_source(labeling: dict) -> str:
    """What computed a labeling report's z: "rgm", or the discriminator's backbone. Reports written before the
    `scorer` key existed kept the scorer in `backbone` ("rgm" there); both read the same."""
    if labeling.get("scorer", labeling.get("backbone")) == "rgm":
        return "rgm"
    return str(labeling.get("backbone"))


SCORER_NAMES = {"rgm": "RGM correction", "mlp": "MLP discriminator", "transformer": "SafetyTransformer"}


def table2_markdown(rows: list[dict]) -> str:
    """One row per task; `z from` names the scorer (`disc.scorer` / `disc.backbone`), since rows may be of different runs."""
    names = list(dict.fromkeys(n for r in rows for n in r["yardsticks"]))
    lines = ["| task | z from | seeds | AUROC | within-agent AUROC | F1 | F1 ceiling (oracle threshold) | "
             "pearson(z, return) | pearson(true label, return) | " + " | ".join(f"AUROC of {n}" for n in names) + " |",
             "|---" * (9 + len(names)) + "|"]
    for r in rows:
        ys = " | ".join(_num(r["yardsticks"].get(n, float("nan"))) for n in names)
        source = r["z_from"] if "z_from" in r else z_source(r)  # suite copies of older per-task rows: `backbone`
        scorer = SCORER_NAMES.get(source, source)
        lines.append(f"| {r['task']} | {scorer} | {len(r['seeds'])} | {fmt_ci(r['auroc'], r['auroc_ci'], 3)} | "
                     f"{r['auroc_within_agent']:.3f} | {r['f1']:.3f} | {_num(r.get('f1_best', float('nan')))} | "
                     f"{r['pearson_return']:.3f} | {_num(r.get('pearson_return_true_label', float('nan')))} | {ys} |")
    return "\n".join(lines) + "\n"

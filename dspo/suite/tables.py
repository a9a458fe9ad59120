"""The suite's paper-style tables and figure, built from each task's report (test block only).

Table 1 (`table1.{json,md}`): normalized reward and cost per task x algorithm over learner seeds,
95 % bootstrap CIs, best safe (method or baseline) bold, unsafe marked; the paired comparisons of
the method against every other row. Table 2 (`table2.{json,md}`): labeling metrics per task beside
the yardsticks. `figure.png`: one reward-cost panel per task.
"""
from __future__ import annotations

import math
from pathlib import Path

import yaml

from dspo.core.artifacts import atomic_path, read_json, save_figure, write_json
from dspo.core.errors import MissingArtifactError
from dspo.evaluation.report import best_safe, plot_rows, table2_markdown
from dspo.learners.registry import ANALYSIS


def _read(path: Path) -> dict:
    if not path.exists():
        raise MissingArtifactError(f"{path} is missing (the task's report unit did not finish)")
    return read_json(path)


def _cell(row: dict | None, best: bool) -> str:
    if row is None:
        return "—"
    ci = f" [{row['reward_ci'][0]:.2f}, {row['reward_ci'][1]:.2f}]" if row["reward_ci"] else ""
    reward = f"{row['reward_mean']:.3f}{ci}"
    reward = f"**{reward}**" if best else reward
    cost = f"{row['cost_mean']:.2f}" + ("" if row["safe"] else " ✗")
    return f"{reward} | {cost} ({row['safe_seed_fraction']:.2f})"


def tuning_budgets(tuning_dir: Path | None, task: str, algos: list[str]) -> dict[str, int]:
    """Configurations each algorithm had on `task`'s tuning block: the distinct configurations over its grids'
    reports (`<tuning_dir>/<task>/<algo>--<knobs>.json`, scripts/tune.py; a grid rerun on more seeds counts once);
    1 (params.yaml as is) without one."""
    out = {}
    for algo in algos:
        reports = [] if tuning_dir is None else sorted((Path(tuning_dir) / task).glob(f"{algo}--*.json"))
        out[algo] = len({row["config"] for p in reports for row in read_json(p)["rows"]}) or 1
    return out


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def params_drift(ran: dict, current: dict) -> list[str]:
    """Dotted keys whose value differs between the params a task's column ran with and the task's params now
    (a key only one side has counts); the `suite` section is the driver's, not the pipeline's, and is skipped."""
    a = {k: v for k, v in _flat(ran).items() if not k.startswith("suite.")}
    b = {k: v for k, v in _flat(current).items() if not k.startswith("suite.")}
    return sorted(k for k in a.keys() | b.keys() if k not in a or k not in b or a[k] != b[k])


def provenance(task_dir: Path, current: dict | None) -> dict:
    """Which commit made a task's column (its run.json) and which params keys have moved since (its params.yaml
    against `current`, the task's params now; None when either side is unknown)."""
    run = read_json(task_dir / "run.json") if (task_dir / "run.json").exists() else {}
    ran_path = task_dir / "params.yaml"
    drift = (params_drift(yaml.safe_load(ran_path.read_text()) or {}, current)
             if current is not None and ran_path.exists() else None)
    return {"commit": run.get("commit"), "params_drift": drift}


def table1(task_dirs: dict[str, Path], tuning_dir: Path | None = None,
           current_params: dict[str, dict] | None = None) -> dict:
    """Rows and comparisons of every task's test block; `current_params` (task -> its params now) lets each
    column say whether it still stands for today's defaults."""
    results = {task: _read(d / "results.json") for task, d in task_dirs.items()}
    blocks = {r["eval_block"] for r in results.values()}
    if blocks != {"test"}:
        raise MissingArtifactError(f"every task's results.json must be the test block, found {sorted(blocks)}")
    rows = [row for r in results.values() for row in r["rows"]]
    for task in results:
        mine = [row for row in rows if row["task"] == task]
        budgets = tuning_budgets(tuning_dir, task, [row["algo"] for row in mine])
        for row in mine:
            row["tuning_configs"] = budgets[row["algo"]]
    return {"eval_block": "test", "episodes_per_seed": min(r["episodes_per_seed"] for r in results.values()),
            "tasks": list(task_dirs), "rows": rows,
            "provenance": {t: provenance(d, (current_params or {}).get(t)) for t, d in task_dirs.items()},
            "comparisons": [c for r in results.values() for c in r["comparisons"]]}


def table1_markdown(table: dict) -> str:
    tasks = table["tasks"]
    algos = list(dict.fromkeys(r["algo"] for r in table["rows"]))
    by = {(r["task"], r["algo"]): r for r in table["rows"]}
    names = {r["algo"]: (r["name"], r["role"]) for r in table["rows"]}
    best = {t: best_safe([r for r in table["rows"] if r["task"] == t]) for t in tasks}
    prov = table.get("provenance", {})
    stale = {t for t in tasks if (prov.get(t) or {}).get("params_drift")}
    head = {t: t + (" †" if t in stale else "") for t in tasks}
    lines = [f"# Suite, Table 1: test block ({table['episodes_per_seed']} episodes per seed)", "",
             "Per task: normalized reward (mean over learner seeds [95 % bootstrap CI over seeds]) | normalized cost "
             "(fraction of seeds safe). ✗ = unsafe (mean normalized cost > 1). **Bold** = best reward among safe "
             "methods and baselines. Analyses read the oracle and are listed last, never bold.", "",
             "| algorithm | seeds | " + " | ".join(f"{head[t]} reward | {head[t]} cost" for t in tasks) + " |",
             "|---|---|" + "---|---|" * len(tasks)]
    ordered = [a for a in algos if names[a][1] != ANALYSIS] + [a for a in algos if names[a][1] == ANALYSIS]
    for algo in ordered:
        seeds = sorted({len(by[(t, algo)]["seeds"]) for t in tasks if (t, algo) in by})
        cells = [_cell(by.get((t, algo)), best[t] == algo) for t in tasks]
        label = names[algo][0] + (" (analysis)" if names[algo][1] == ANALYSIS else "")
        lines.append(f"| {label} | {'/'.join(map(str, seeds))} | " + " | ".join(cells) + " |")
    if prov:
        lines += ["", "Columns: the commit each task's column ran at, and the params keys that have changed since "
                  "(its `reports/suite/<task>/params.yaml` against params.yaml now, suite overrides applied)."
                  + (" † = the column does not stand for today's defaults: rerun `python scripts/suite.py --task "
                     "<task>`." if stale else ""),
                  "", "| task | commit | params since |", "|---|---|---|"]
        for t in tasks:
            p = prov.get(t) or {}
            drift = p.get("params_drift")
            moved = ("unknown" if drift is None else "as now" if not drift else
                     f"{len(drift)} differ: " + ", ".join(f"`{k}`" for k in drift[:12])
                     + (f", … (+{len(drift) - 12})" if len(drift) > 12 else ""))
            lines.append(f"| {head[t]} | {(p.get('commit') or '?')[:8]} | {moved} |")
    if any("tuning_configs" in r for r in table["rows"]):
        lines += ["", "Tuning budget: configurations each algorithm had on the task's tuning block (sum over its grids "
                  "in `reports/tuning/<task>/`; 1 = params.yaml as is):", "",
                  "| algorithm | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
        lines += [f"| {names[a][0]} | " + " | ".join(str(by[(t, a)].get("tuning_configs", "—")) if (t, a) in by
                                                     else "—" for t in tasks) + " |" for a in ordered]
    if table["comparisons"]:
        lines += ["", "Probability of improvement in normalized reward, P(method > other) over learner seeds "
                  "[95 % bootstrap CI]; only against rows of the same task:", "",
                  "| task | method | versus | P(improvement) | other is safe |", "|---|---|---|---|---|"]
        lines += [f"| {c['task']} | {names[c['algo']][0]} | {names[c['versus']][0]} | {c['poi']:.2f} "
                  f"[{c['poi_ci'][0]:.2f}, {c['poi_ci'][1]:.2f}] | {'yes' if c['versus_safe'] else 'no'} |"
                  for c in table["comparisons"]]
    return "\n".join(lines) + "\n"


def write_suite_tables(task_dirs: dict[str, Path], out_dir: Path, tuning_dir: Path | None = None,
                       current_params: dict[str, dict] | None = None) -> tuple[dict, dict]:
    """Write table1/table2 (json + md) and figure.png under `out_dir` from each task's report copies
    (and each algorithm's tuning budget from `tuning_dir`, scripts/tune.py's reports; each column's
    provenance against `current_params`)."""
    t1 = table1(task_dirs, tuning_dir, current_params)
    write_json(t1, out_dir / "table1.json")
    with atomic_path(out_dir / "table1.md") as tmp:
        tmp.write_text(table1_markdown(t1))
    rows2 = [_read(d / "labeling.json") for d in task_dirs.values()]
    t2 = {"rows": rows2}
    write_json(t2, out_dir / "table2.json")
    with atomic_path(out_dir / "table2.md") as tmp:
        tmp.write_text("# Suite, Table 2: safety labeling of D^U (mean over learner seeds)\n\n"
                       "AUROC of DSPO's z (from the scorer the row names) for \"the episode is safe\", within-agent "
                       "AUROC (pairs from the same behavior agent), F1 at the smallest demo z, the F1 ceiling (the best "
                       "threshold, picked with the oracle: what any decision rule on this z could reach; n/a where the "
                       "task's labeling was not rerun since it was added), Pearson(z, return); "
                       "beside the AUROC of "
                       "threshold-free yardsticks.\n\n" + table2_markdown(rows2))
    plot_suite(t1, out_dir / "figure.png")
    return t1, t2


def plot_suite(table: dict, png_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = table["tasks"]
    cols = min(3, len(tasks))
    rows = math.ceil(len(tasks) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.2 * rows), squeeze=False)
    for ax, task in zip(axes.flat, tasks):
        plot_rows(ax, [r for r in table["rows"] if r["task"] == task], task)
    for ax in list(axes.flat)[len(tasks):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, [label.removesuffix(" (unsafe)") for label in labels], loc="lower center",
               ncol=min(5, len(labels)), fontsize=8)
    fig.suptitle("Reward vs cost per task (test block; mean over learner seeds, 95 % CI; hollow = unsafe; "
                 "dashed: cost limit)", fontsize=10)
    fig.tight_layout(rect=(0, 0.08, 1, 0.97))
    save_figure(fig, png_path)

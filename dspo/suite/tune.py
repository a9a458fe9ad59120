"""Knob choice on the TUNING block: a grid of params overrides, each run through the pipeline, ranked.

Every configuration is a unit of the suite's local executor (`run_unit`): a git worktree of HEAD with
its overrides applied to params.yaml, sharing this project's DVC cache, where `dvc repro evaluate@<algo>-<seed>` runs for every learner (or baseline)
seed: stages no override touches are restored from the run-cache, never recomputed. Only the
`tuning` block of each evaluation JSON is read; the test block is computed by the same stage
but never looked at here, so the committed tables stay untouched by the choice.

Controls (`run_controls`) are the same runs with nothing chosen: the reference (params.yaml) and one
configuration per control, read on the TEST block -- they belong in the ablation report, and a
choice made on them would be a choice made on the test block.

The rule (one for every algorithm, so a method and its baselines are tuned alike): the highest mean
normalized reward among the configurations safe on every seed (each seed's mean normalized cost
<= 1: the project's target); if there is none, among those safe on average over seeds; if none is
safe, the lowest mean cost. The number of configurations is the tuning budget
reported beside the result.
"""
from __future__ import annotations

import itertools
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from dspo.core.artifacts import atomic_path, write_json
from dspo.core.config import Section, load_params
from dspo.core.errors import ParamError
from dspo.evaluation.stats import probability_of_improvement_ci
from dspo.learners.registry import algorithms
from dspo.suite.local import remove_workspace, run_unit
from dspo.suite.plan import Unit, split_assignment, suite_task_params, task_params

BASELINE_ALGOS_KEY = "evaluated_baselines"


@dataclass(frozen=True)
class Config:
    name: str
    overrides: dict[str, Any]


def section_models() -> dict[str, type[Section]]:
    """Every params section's pydantic model, by section name: the learner modules (imported by the
    registry), data collection and evaluation. A grid value a stage would refuse is refused before any run."""
    import dspo.data.behavior  # noqa: F401  (defines its Section)
    import dspo.data.collect  # noqa: F401
    import dspo.evaluation.evaluate  # noqa: F401
    import dspo.evaluation.fig4  # noqa: F401

    algorithms()
    out, stack = {}, [Section]
    while stack:
        for sub in stack.pop().__subclasses__():
            if sub.section:
                out[sub.section] = sub
            stack.append(sub)
    return out


def config_name(overrides: dict[str, Any]) -> str:
    """`key=json,key=json`: one name for a configuration in tuning and control tables."""
    return ",".join(f"{k}={json.dumps(v)}" for k, v in overrides.items())


def parse_grid(items: list[str]) -> list[Config]:
    """`section.key=v1,v2` options -> the cartesian product of their values, one Config each (values as YAML)."""
    axes = []
    for item in items:
        key, values = split_assignment(item, "--grid", item, "section.key=value1,value2,...")
        axes.append([(key, yaml.safe_load(v)) for v in values.split(",")])
    configs = []
    for combo in itertools.product(*axes):
        overrides = dict(combo)
        configs.append(Config(config_name(overrides) or "params.yaml", overrides))
    return configs


def parse_seeds(text: str) -> list[int]:
    """`0,1,2` -> [0, 1, 2]; anything else is refused with what to write."""
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise ParamError(f"--seeds {text!r}: expected comma-separated integers, e.g. 0,1,2") from None


def tuning_stem(algo: str, configs: list[Config], seeds: list[int] | None = None) -> str:
    """`<algo>--<key>+<key>[--seeds0-1-2]`: one report per grid of knobs (and per explicit seed list), so a later
    grid never overwrites an earlier one."""
    keys = list(dict.fromkeys(k for c in configs for k in c.overrides))
    stem = f"{algo}--{'+'.join(keys)}" if keys else algo
    return stem + ("--seeds" + "-".join(map(str, seeds)) if seeds is not None else "")


def write_report(result: dict, out: Path, markdown: str) -> tuple[Path, Path]:
    """`out`.json and `out`.md; the suffixes are appended, since a stem holds dotted keys (`bc.steps+bc.lr`)."""
    paths = out.parent / f"{out.name}.json", out.parent / f"{out.name}.md"
    write_json(result, paths[0])
    with atomic_path(paths[1]) as tmp:
        tmp.write_text(markdown)
    return paths


RULE = ("highest mean tuning reward among configs safe on every seed (cost <= 1), else among configs safe on "
        "average, else the lowest mean cost")


def select(rows: list[dict]) -> dict:
    """The tuning rule of the module docstring."""
    for safe in ([r for r in rows if r["safe_seed_fraction"] == 1.0], [r for r in rows if r["cost_mean"] <= 1.0]):
        if safe:
            return max(safe, key=lambda r: r["reward_mean"])
    return min(rows, key=lambda r: r["cost_mean"])


def block_row(workspace: Path, task: str, algo: str, seeds: list[int], block: str = "tuning") -> dict:
    """Mean reward / cost over seeds on one evaluation block, and each seed's values."""
    per_seed = []
    for seed in seeds:
        values = json.loads((workspace / "reports" / task / "eval" / algo / f"seed{seed}.json").read_text())[block]
        per_seed.append({"seed": seed, "reward": values["normalized_reward"], "cost": values["normalized_cost"]})
    reward, cost = np.array([s["reward"] for s in per_seed]), np.array([s["cost"] for s in per_seed])
    return {"reward_mean": float(reward.mean()), "cost_mean": float(cost.mean()),
            "safe_seed_fraction": float(np.mean(cost <= 1.0)), "per_seed": per_seed}


def run_configs(repo: Path, params_path: Path, task: str, algo: str, configs: list[Config], root: Path,
                commit: str, cache_dir: Path, threads: int, block: str, label: str, jobs: int = 1,
                seeds: list[int] | None = None) -> list[dict]:
    """Run every configuration through `evaluate@<algo>-<seed>`; one row each (in the grid's order), on `block`.

    The first configuration runs alone, so the stages the grid shares (a DSPO grid over distillation knobs
    shares its diffusion models) are computed once and the others restore them; the rest run `jobs` at a
    time, each at `threads` threads (cores // threads jobs keep every core busy without oversubscribing).
    `seeds` replaces the algorithm's seed list (`seeds.learner` or `seeds.baseline`) in every configuration: a
    baseline tuned on its one default seed picks that seed's knife edge (README, DWBC)."""
    if algo not in algorithms():
        raise ParamError(f"--algo {algo!r} is not an algorithm; valid: {', '.join(sorted(algorithms()))}")
    if jobs < 1:
        raise ParamError(f"--jobs must be >= 1, got {jobs}")
    base = load_params(params_path)
    seed_key = "baseline" if algo in base["algorithms"][BASELINE_ALGOS_KEY] else "learner"
    group = "evaluate_baseline" if seed_key == "baseline" else "evaluate"
    if seed_key == "learner" and algo not in base["algorithms"]["evaluated"]:
        raise ParamError(f"--algo {algo!r} is not evaluated by the pipeline (algorithms.evaluated)")
    task_base = suite_task_params(base, task)  # the task as the suite runs it (suite.overrides), then each config
    per_config = [task_params(task_base, task, c.overrides) for c in configs]  # refuse unknown keys before any run
    if seeds is not None:
        if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
            raise ParamError(f"--seeds must be distinct non-negative integers, got {seeds}")
        for p in per_config:
            p["seeds"][seed_key] = list(seeds)
    models = section_models()
    for c, p in zip(configs, per_config):  # refuse bad values (and bc.per_algo entries) here, not in a stage
        for name in dict.fromkeys(key.split(".")[0] for key in c.overrides):
            if name in models:
                models[name].from_params(p, source=f"configuration {c.name}")

    def run_one(i: int) -> dict:
        config, params = configs[i], per_config[i]
        run_seeds = list(params["seeds"][seed_key])  # `seeds` when given, else params' list
        unit = Unit(task, f"{algo}-{i}", tuple(f"{group}@{algo}-{s}" for s in run_seeds))
        done = run_unit(repo, commit, unit, params, root, cache_dir, threads, keep=True)  # the suite's unit runner
        if done.returncode != 0:
            raise ParamError(f"configuration {config.name} failed: see {done.log}")
        row = {"config": config.name, "overrides": config.overrides,
               **block_row(done.workspace, task, algo, run_seeds, block),
               "seconds": round(done.seconds, 1), "stages_run": len(done.ran), "stages_restored": done.restored}
        remove_workspace(repo, done.workspace)
        print(f"[{label}] {task} {algo} {config.name}: reward {row['reward_mean']:.3f}, cost {row['cost_mean']:.2f} "
              f"({row['seconds']:.0f} s, {row['stages_run']} stages run)", flush=True)
        return row

    if not configs:
        return []
    rows = [run_one(0)]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        rows += list(pool.map(run_one, range(1, len(configs))))
    return rows


def run_tuning(repo: Path, params_path: Path, task: str, algo: str, configs: list[Config], root: Path,
               out: Path, commit: str, cache_dir: Path, threads: int, jobs: int = 1,
               seeds: list[int] | None = None) -> dict:
    """Run every configuration on the tuning block, write `out` (.json and .md) and return the result."""
    start = time.perf_counter()
    rows = run_configs(repo, params_path, task, algo, configs, root, commit, cache_dir, threads, "tuning", "tune",
                       jobs, seeds)
    chosen = select(rows)
    result = {"task": task, "algo": algo, "eval_block": "tuning", "commit": commit, "budget": len(rows),
              "rule": RULE, "chosen": chosen["config"], "jobs": jobs, "threads": threads, "seeds": seeds,
              "wall_seconds": round(time.perf_counter() - start, 1), "rows": rows}
    write_report(result, out, tuning_markdown(result))
    return result


# ----------------------------------------------------------------------------------------------
# Controls: not choices, so they are read on the TEST block, beside the method as configured


REFERENCE = "params.yaml (the method as configured)"


def parse_controls(items: list[str]) -> list[Config]:
    """`key=value[;key=value]` per control -> Configs, after the reference (params.yaml unchanged)."""
    configs = [Config(REFERENCE, {})]
    for item in items:
        overrides = {}
        for part in item.split(";"):
            key, value = split_assignment(part, "--control", item, "section.key=value[;section.key=value]")
            overrides[key] = yaml.safe_load(value)
        configs.append(Config(config_name(overrides), overrides))
    return configs


def compare_controls(rows: list[dict]) -> list[dict]:
    """Each row with P(reference > it) in reward over seeds (rliable's probability of improvement, CI)."""
    ref = np.array([s["reward"] for s in rows[0]["per_seed"]])
    out = [{**rows[0], "p_reference_better": None}]  # no bootstrap of the reference against itself
    for row in rows[1:]:
        values = np.array([s["reward"] for s in row["per_seed"]])
        out.append({**row, "p_reference_better": list(probability_of_improvement_ci(ref, values))})
    return out


def run_controls(repo: Path, params_path: Path, task: str, algo: str, configs: list[Config], root: Path,
                 out: Path, commit: str, cache_dir: Path, threads: int, jobs: int = 1,
                 seeds: list[int] | None = None) -> dict:
    """Run the reference and every control on the test block; write `out` (.json and .md)."""
    rows = compare_controls(run_configs(repo, params_path, task, algo, configs, root, commit, cache_dir, threads,
                                        "test", "control", jobs, seeds))
    result = {"task": task, "algo": algo, "eval_block": "test", "commit": commit, "rows": rows}
    write_report(result, out, controls_markdown(result))
    return result


def controls_markdown(result: dict) -> str:
    lines = [f"# {result['task']} {result['algo']}: controls on the test block", "",
             f"Commit {result['commit'][:10]}. Controls are not choices (nothing here is selected), so they are "
             "read on the test block. P(ref > control): probability that the method as configured out-earns the "
             "control, over learner seeds, with a 95 % bootstrap CI.", "",
             "| configuration | reward | cost | safe seeds | P(ref > control) | per seed (reward / cost) |",
             "|---|---|---|---|---|---|"]
    for r in result["rows"]:
        seeds = ", ".join(f"{s['reward']:.3f} / {s['cost']:.2f}" for s in r["per_seed"])
        p = r["p_reference_better"]
        poi = "reference" if p is None else f"{p[0]:.2f} [{p[1]:.2f}, {p[2]:.2f}]"
        lines.append(f"| {r['config']} | {r['reward_mean']:.3f} | {r['cost_mean']:.2f} | {r['safe_seed_fraction']:.2f} "
                     f"| {poi} | {seeds} |")
    return "\n".join(lines) + "\n"


def tuning_markdown(result: dict) -> str:
    lines = [f"# {result['task']} {result['algo']}: {result['budget']} configurations on the tuning block",
             "", f"Commit {result['commit'][:10]}. Rule: {result['rule']}. Chosen: `{result['chosen']}`.", ""]
    if "wall_seconds" in result:  # reports written before configurations ran in parallel do not have it
        total = sum(r["seconds"] for r in result["rows"])
        lines += [f"Wall time {result['wall_seconds']:.0f} s, {result['jobs']} configuration(s) at once after the first, "
                  f"{result['threads']} thread(s) each (the configurations' own times sum to {total:.0f} s).", ""]
    lines += ["| configuration | reward | cost | safe seeds | per seed (reward / cost) |", "|---|---|---|---|---|"]
    for r in result["rows"]:
        seeds = ", ".join(f"{s['reward']:.3f} / {s['cost']:.2f}" for s in r["per_seed"])
        mark = "**" if r["config"] == result["chosen"] else ""
        lines.append(f"| {mark}{r['config']}{mark} | {r['reward_mean']:.3f} | {r['cost_mean']:.2f} | "
                     f"{r['safe_seed_fraction']:.2f} | {seeds} |")
    return "\n".join(lines) + "\n"

"""Does the generated data carry cost? Place D^G on a yardstick of real pairs (an oracle diagnostic).

    python scripts/generation_probe.py --task BallCircle                       # this workspace's artifacts
    python scripts/generation_probe.py --task CarRun --lock reports/suite/CarRun/dvc.lock   # a suite run's, from the DVC cache

Each generated (s, a) pair takes the oracle step cost of its nearest real pair in one half of D^U
(`dspo/evaluation/implied_cost.py`); the demos and the other half's safe and unsafe episodes are measured
the same way. Per learner seed and chain (DSPO, the true-label analysis) it reports the implied normalized
cost beside those yardsticks, the same per return-condition bin (does a high return condition buy
cost?), the policy's measured test-block cost, and the segment horizon against the data's episode lengths.
Writes reports/probes/generation-<task>.{json,md}. Reads `oracle.parquet`: a diagnostic, never a method's input.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pandas as pd
import torch
import typer
import yaml

from dspo.core.artifacts import atomic_path, write_json
from dspo.core.cli import stage
from dspo.core.config import read_section
from dspo.core.errors import DataError
from dspo.data.schemas import GENERATED, ORACLE, SAFE_DEMO, read_dataset, read_frame, read_table, scalars, vectors
from dspo.data.tasks import get_task
from dspo.evaluation.implied_cost import Reference, by_condition, implied_cost, match
from dspo.learners.dspo.distill import DistillConfig
from dspo.learners.dspo.inverse_dynamics import consecutive, fit_inverse_dynamics, segment_pairs
from dspo.learners.normalizers import GaussianNormalizer
from dspo.suite.local import cache_dir_of

REPO = Path(__file__).resolve().parents[1]
CHAINS = {"dspo": "dspo", "analysis_oracle_dspo": "analysis_oracle"}  # algo -> data/<task>/<dir>/seed<k>/
app = typer.Typer(add_completion=False)


def artifact_paths(lock: Optional[Path]) -> Callable[[str], Path]:
    """path in the repo -> readable file: the workspace's, or the DVC cache object a lock file names."""
    if lock is None:
        return lambda rel: REPO / rel
    stages = yaml.safe_load(lock.read_text())["stages"]
    md5 = {o["path"]: o["md5"] for s in stages.values() for o in s.get("outs", []) + s.get("deps", []) if "md5" in o}
    objects = cache_dir_of(REPO) / "files" / "md5"  # the project's cache (honours a configured cache.dir)

    def resolve(rel: str) -> Path:
        if rel not in md5:
            raise DataError(f"{lock}: no output {rel} (run the suite for this task first)")
        h = md5[rel]
        return objects / h[:2] / h[2:]
    return resolve


def test_costs(resolve, task: str, algo: str, seed: int) -> Optional[float]:
    """The policy's measured mean normalized cost on the test block (None when not evaluated)."""
    try:
        path = resolve(f"reports/{task}/eval/{algo}/seed{seed}.json")
        return float(json.loads(Path(path).read_text())["test"]["normalized_cost"])
    except (DataError, FileNotFoundError, KeyError):
        return None


@app.command()
@stage
def main(task: str = typer.Option(..., help="task name from the registry"),
         lock: Optional[Path] = typer.Option(None, help="a suite run's dvc.lock: read its artifacts from the DVC cache"),
         seeds: str = typer.Option("0,1,2", help="learner seeds"),
         bins: int = typer.Option(4, help="return-condition bins"),
         max_pairs: int = typer.Option(8000, help="pairs measured per row (a random subset; generated: whole segments)"),
         params: Path = typer.Option(REPO / "params.yaml", help="params file (distill.inverse_*: the model's settings)"),
         out: Optional[Path] = typer.Option(None, help="JSON report (default reports/probes/generation-<task>.json)")) -> None:
    spec = get_task(task)
    resolve = artifact_paths(lock)
    data = read_dataset(resolve(f"data/{task}/dataset.parquet"), task=task)
    oracle = read_frame(ORACLE, resolve(f"data/{task}/oracle.parquet"))
    if not np.array_equal(oracle["episode_id"].to_numpy(), data.episode_id):
        raise DataError("oracle.parquet and dataset.parquet rows differ: rerun collect")
    length = pd.Series(data.step).groupby(data.episode_id).transform("size").to_numpy()
    unsafe = ~oracle["is_safe"].to_numpy()
    demo = data.split == SAFE_DEMO
    # Reference: every other D^U episode; the rest of D^U is measured like D^G (its safe and unsafe episodes).
    ref_mask = ~demo & (data.episode_id % 2 == 0)
    sa = np.concatenate([data.obs, data.action], axis=1)
    norm = GaussianNormalizer.fit(sa)
    ref = Reference(torch.as_tensor(norm.normalize(sa[ref_mask]), dtype=torch.float32), oracle["cost"].to_numpy()[ref_mask],
                    unsafe[ref_mask], (data.step / length)[ref_mask])
    steps = float(np.median(pd.Series(length).groupby(data.episode_id).first()))
    common = dict(ref=ref, steps_per_episode=steps, cost_limit=spec.cost_limit)
    rng = np.random.default_rng(0)
    # Inverse dynamics fitted on the reference half's transitions; every row below is scored by it.
    s_t, s_next, a_t, ep_t = consecutive(data.episode_id, data.step, data.obs, data.action)
    in_ref = np.isin(ep_t, np.unique(data.episode_id[ref_mask]))
    dc = read_section(DistillConfig, params)
    inverse = fit_inverse_dynamics(s_t[in_ref], s_next[in_ref], a_t[in_ref], dc.inverse_hidden, dc.inverse_steps,
                                   dc.inverse_batch_size, dc.inverse_lr, seed=0)
    yardsticks = {}
    for name, mask in (("D^S (demos)", demo), ("D^U safe (held out)", ~demo & ~ref_mask & ~unsafe),
                       ("D^U unsafe (held out)", ~demo & ~ref_mask & unsafe)):
        rows_in = np.flatnonzero(mask)
        pick = rng.choice(rows_in, size=min(max_pairs, len(rows_in)), replace=False)
        own = np.isin(ep_t, np.unique(data.episode_id[mask]))
        yardsticks[name] = {**implied_cost(*match(sa[pick], norm, ref), **common),
                            "action_error": float(inverse.action_error(s_t[own], s_next[own], a_t[own]).mean()),
                            "true_normalized_cost": float(oracle["cost"].to_numpy()[mask].mean() * steps / spec.cost_limit)}
    episode_len = pd.Series(length).groupby(data.episode_id).first()
    terminated = pd.Series(data.terminated).groupby(data.episode_id).any()
    rows = []
    horizon = None
    for algo, folder in CHAINS.items():
        for seed in [int(s) for s in seeds.split(",")]:
            table, _ = read_table(GENERATED, resolve(f"data/{task}/{folder}/seed{seed}/generated.parquet"))
            horizon = int(scalars(table, "step").max()) + 1
            n_seg = len(table) // horizon
            segs = np.sort(rng.choice(n_seg, size=min(n_seg, max(1, max_pairs // horizon)), replace=False))
            rows_in = (segs[:, None] * horizon + np.arange(horizon)).ravel()
            g_obs, g_act = vectors(table, "obs")[rows_in], vectors(table, "action")[rows_in]
            gsa = np.concatenate([g_obs, g_act], axis=1)
            g_s, g_next, g_a = segment_pairs(g_obs.reshape(len(segs), horizon, -1), g_act.reshape(len(segs), horizon, -1))
            idx, dist = match(gsa, norm, ref)
            row = {"algo": algo, "seed": seed, **implied_cost(idx, dist, segment_length=horizon, **common),
                   "action_error": float(inverse.action_error(g_s, g_next, g_a).mean()),
                   "test_cost": test_costs(resolve, task, algo, seed),
                   "by_return_condition": by_condition(idx, scalars(table, "return_condition")[rows_in], ref, bins)}
            rows.append(row)
    report = {"task": task, "lock": str(lock) if lock else None, "steps_per_episode": steps, "horizon": horizon,
              "episode_length": {"median": float(episode_len.median()), "p10": float(episode_len.quantile(0.1)),
                                 "share_shorter_than_horizon": float((episode_len < (horizon or 0)).mean()),
                                 "terminated_share": float(terminated.mean())},
              "yardsticks": yardsticks, "generated": rows}
    out = out or REPO / "reports" / "probes" / f"generation-{task}.json"
    write_json(report, out)
    md = render(report)
    with atomic_path(out.with_name(out.name[:-len(".json")] + ".md")) as tmp:
        tmp.write_text(md)
    typer.echo(md)


def render(report: dict) -> str:
    lines = [f"# Implied cost of generated data: {report['task']}", "",
             f"Episodes: median length {report['episode_length']['median']:.0f}, 10 % shorter than "
             f"{report['episode_length']['p10']:.0f}, {report['episode_length']['terminated_share']:.0%} ended by the "
             f"simulator; segment horizon {report['horizon']} "
             f"({report['episode_length']['share_shorter_than_horizon']:.0%} of episodes are shorter).", "",
             "Implied cost: the oracle step cost of each pair's nearest D^U pair (reference half), x episode length / "
             "kappa. Action error: mean |a - g(s, s')| of an inverse-dynamics model fitted on the reference half "
             "(action units; does the action move the state as recorded?).", "",
             "| pairs | implied norm. cost | true norm. cost | NN in unsafe episode | NN distance | NN position | action error |",
             "|---|---|---|---|---|---|---|"]
    for name, y in report["yardsticks"].items():
        lines.append(f"| {name} | {y['implied_normalized_cost']:.2f} | {y['true_normalized_cost']:.2f} | "
                     f"{y['nn_in_unsafe_episode']:.2f} | {y['nn_distance_mean']:.2f} | {y['nn_position_mean']:.2f} | "
                     f"{y['action_error']:.3f} |")
    lines += ["", "| chain | seed | implied norm. cost | segments with cost | NN in unsafe episode | NN distance | "
              "NN position | action error | policy test cost | implied step cost by return condition (low -> high) |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["generated"]:
        cond = ", ".join(f"{b['implied_step_cost']:.3f}" for b in r["by_return_condition"])
        test = "-" if r["test_cost"] is None else f"{r['test_cost']:.2f}"
        lines.append(f"| {r['algo']} | {r['seed']} | {r['implied_normalized_cost']:.2f} | {r['segments_with_cost']:.2f} | "
                     f"{r['nn_in_unsafe_episode']:.2f} | {r['nn_distance_mean']:.2f} | {r['nn_position_mean']:.2f} | "
                     f"{r['action_error']:.3f} | {test} | {cond} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    app()

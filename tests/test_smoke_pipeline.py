"""End to end: the real `dvc repro` on a temporary copy of the repo with a tiny params set.

Covers every stage in dvc.yaml with the real simulator and real training, then checks the DVC
contract users rely on: a second `dvc repro` does nothing, changing only `eval.*` reruns only
evaluation, and a collect run that cannot meet the split rules fails without touching the data.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dspo.core.artifacts import read_json
from dspo.data.schemas import DATASET, GENERATED, LABELED, ORACLE, read_dataset, read_frame, read_table
from tests.conftest import REPO

TINY = {
    "behavior": {"agents": [{"name": "ppol_k5", "cost_limit": 5}, {"name": "ppo_reward", "cost_limit": None}],
                 "env_steps": 4000, "snapshots": 2, "hidden": [32, 32], "episode_per_collect": 4},
    "collect": {"episodes_per_snapshot": 4, "mix_probs": [0.5], "episodes_per_mix": 4, "n_safe_demos": 3,
                "min_safe_like_demos": 0, "min_unsafe_above_demos": 0, "strict": False, "n_envs": 4},
    # every BC-trained algorithm keeps an entry in per_algo ({}: the shared settings): its stage lists that key
    "bc": {"steps": 200, "batch_size": 64, "hidden": [32, 32], "log_every": 50,
           "per_algo": {"bc_safe": {"steps": 100}, "bc_all": {}, "dspo": {}, "analysis_oracle_dspo": {}}},
    "eval": {"tuning_episodes": 2, "test_episodes": 3, "n_envs": 3},
    "seeds": {"learner": [0, 1], "baseline": [0]},
    "disc": {"context_len": 20, "d_model": 16, "n_layers": 1, "n_heads": 2, "pref_dim": 16, "steps": 30,
             "batch_size": 8, "eval_every": 10, "log_every": 10, "holdout_demos": 1},
    "diffusion": {"horizon": 8, "dim": 8, "train_steps": 30, "batch_size": 16, "ema_start": 10, "log_every": 10,
                  "save_every": 10},
    "generate": {"n_segments": 16, "sampling_steps": 5, "report_points": 50, "keep_fraction": 0.5},
    "fig4": {"steps": 10, "eval_every": 5},
    "distill": {"inverse_hidden": [32, 32], "inverse_steps": 20, "inverse_batch_size": 32},
    **{algo: {"steps": 40, "batch_size": 32, "hidden": [32, 32], "log_every": 10} for algo in ("td3bc", "iql", "dwbc")},
    "cql": {"steps": 20, "batch_size": 32, "hidden": [32, 32], "n_actions": 3, "bc_steps": 5, "log_every": 10},
    "rgm": {"steps": 30, "disc_steps": 10, "batch_size": 32, "hidden": [32, 32], "log_every": 10},
    "cdt_v": {"steps": 20, "batch_size": 8, "warmup_steps": 5, "context_len": 5, "d_model": 16, "n_layers": 1,
              "n_heads": 2, "log_every": 10},
}


def tiny_params() -> dict:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for section, values in TINY.items():
        params[section].update(values)
    return params


def dvc(repo: Path, *args: str) -> str:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", PYTHONPATH=str(repo),
               DVC_NO_ANALYTICS="1", WANDB_MODE="disabled")
    proc = subprocess.run([str(Path(sys.executable).parent / "dvc"), *args], cwd=repo, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, f"dvc {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_dvc_repro_end_to_end(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    for item in ("dspo", "stages", "dvc.yaml"):
        src = REPO / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, repo / item)
    (repo / "params.yaml").write_text(yaml.safe_dump(tiny_params(), sort_keys=False))
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    dvc(repo, "init", "-q")

    out = dvc(repo, "repro")
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for name in stages:
        assert f"Running stage '{name}" in out, f"stage {name} did not run"
    assert "Running stage 'distill_bc@1'" in out and "Running stage 'evaluate@dspo-1'" in out  # every learner seed

    data = read_dataset(repo / "data/BallCircle/dataset.parquet", task="BallCircle")
    assert set(data.split) == {"safe_demo", "unlabeled"}
    assert not any("cost" in c for c in DATASET.columns())
    oracle = read_frame(ORACLE, repo / "data/BallCircle/oracle.parquet")
    assert len(oracle) == len(data.reward)
    summary = read_json(repo / "reports/BallCircle/dataset.json")
    assert summary["safe_demo"]["episodes"] == 3 and summary["safe_demo"]["safe_fraction"] == 1.0
    assert (repo / "reports/BallCircle/dataset.png").stat().st_size > 1000
    runs = {**{a: [0, 1] for a in ("bc_all", "bc_safe", "dspo", "analysis_oracle_dspo")},
            **{a: [0] for a in ("td3bc", "iql", "cql", "dwbc", "rgm", "cdt_v")}}
    for algo, seeds in runs.items():
        for seed in seeds:
            metrics = read_json(repo / f"reports/BallCircle/eval/{algo}/seed{seed}.json")
            assert metrics["seed"] == seed and metrics["tuning"]["episodes"] == 2 and metrics["test"]["episodes"] == 3
            assert metrics["test"]["safe"] == (metrics["test"]["normalized_cost"] <= 1)
            assert (repo / f"models/BallCircle/{algo}/seed{seed}/policy.pt").exists()
    labeled = read_frame(LABELED, repo / "data/BallCircle/dspo/seed1/labeled.parquet")
    assert len(labeled) == summary["episodes"] and labeled["z"].between(0, 1).all()
    labeling = read_json(repo / "reports/BallCircle/labeling/seed0.json")
    assert 0 <= labeling["auroc"] <= 1 and "yardstick: -return" in labeling["yardsticks"]
    table2_row = read_json(repo / "reports/BallCircle/labeling.json")
    assert table2_row["seeds"] == [0, 1] and "-return" in table2_row["yardsticks"]
    assert "RGM-estimated cost" in table2_row["yardsticks"]
    gen_report = read_json(repo / "reports/BallCircle/generation/seed0.json")
    assert gen_report["segments_sampled"] == 16 and gen_report["horizon"] == 8
    assert gen_report["segments"] == 8 and gen_report["filtered_by"].endswith("discriminator/seed0/model.pt")
    oracle_gen = read_json(repo / "reports/BallCircle/analysis_oracle_generation/seed0.json")
    assert oracle_gen["segments"] == 16 and oracle_gen["filtered_by"] is None  # no scorer for the true-label chain
    assert read_table(GENERATED, repo / "data/BallCircle/dspo/seed0/generated.parquet")[0].num_rows == 8 * 8
    results = (repo / "reports/BallCircle/results.md").read_text()
    assert all(name in results for name in ("DSPO", "TD3+BC", "IQL", "CQL", "DWBC", "RGM", "CDT-V"))
    table = read_json(repo / "reports/BallCircle/results.json")
    assert table["eval_block"] == "test" and table["episodes_per_seed"] == 3
    rows = {r["algo"]: r for r in table["rows"]}
    assert rows["dspo"]["seeds"] == [0, 1] and len(rows["dspo"]["reward_ci"]) == 2
    assert rows["td3bc"]["reward_ci"] is None  # one seed: no interval claimed
    assert read_json(repo / "reports/BallCircle/tuning.json")["eval_block"] == "tuning"
    assert not list((repo / ".dvc/tmp/resume").rglob("*.pt"))  # resumable diffusion states are cleaned up

    # A second repro is a no-op.
    assert "Running stage" not in dvc(repo, "repro")

    # Adding a learner seed would run only that seed's stages (and the report), never the data stages.
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["seeds"]["learner"] = [0, 1, 2]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = dvc(repo, "status", "--json")
    stale = set(json.loads(out[out.index("{"):]))
    assert stale and all(name.endswith(("@2", "-2")) or name == "report" for name in stale), stale
    params["seeds"]["learner"] = [0, 1]

    # Changing only eval.* reruns only evaluation.
    params["eval"]["test_episodes"] = 2
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = dvc(repo, "repro")
    ran = {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")}
    assert {"evaluate@bc_all-0", "evaluate@bc_safe-1", "evaluate_baseline@cql-0"} <= ran
    assert all(name.startswith("evaluate") or name == "report" for name in ran), ran  # nothing upstream
    assert read_json(repo / "reports/BallCircle/eval/bc_all/seed0.json")["test"]["episodes"] == 2

    # collect that cannot meet the split refuses with a clear message and leaves the data untouched.
    before = sha(repo / "data/BallCircle/dataset.parquet")
    params["collect"]["n_safe_demos"] = 10_000
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    proc = subprocess.run([sys.executable, "stages/collect.py", "--task", "BallCircle", "--seed", "0"], cwd=repo,
                          capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(repo)), timeout=600)
    assert proc.returncode == 2
    assert "collect.n_safe_demos=10000" in proc.stderr
    assert sha(repo / "data/BallCircle/dataset.parquet") == before
    assert not list((repo / "data/BallCircle").glob("*.tmp"))

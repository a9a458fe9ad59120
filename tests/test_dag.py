"""The cost-label-free guarantee, checked on the DVC graph itself (property tests on dvc.yaml)."""
from pathlib import Path

import yaml

from dspo.data.schemas import DATASET

REPO = Path(__file__).resolve().parents[1]
ORACLE_READERS = ("evaluate", "analysis")  # stage-name prefixes allowed to read the oracle


def expanded_stages(root: Path = REPO) -> dict[str, dict]:
    """Every stage of the project at `root` as DVC itself expands it (foreach, matrix, ${...}): name ->
    {"cmd", "deps" (paths), "outs" (outs, metrics and plots), "params" (keys)}."""
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    out = {}
    with Repo(str(root)) as repo:
        for st in repo.index.stages:
            out[st.name] = {
                "cmd": st.cmd,
                "deps": [d.def_path for d in st.deps if not isinstance(d, ParamsDependency)],
                "outs": [o.def_path for o in st.outs],
                "params": [p for d in st.deps if isinstance(d, ParamsDependency) for p in d.params],
            }
    return out


def project_copy(tmp_path: Path, spec: dict) -> Path:
    """A throw-away DVC project with `spec` as dvc.yaml and the repo's params.yaml."""
    from dvc.repo import Repo

    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(spec))
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    Repo.init(str(tmp_path), no_scm=True)
    return tmp_path


def deps_of(stage: dict) -> list[str]:
    return stage["deps"]


def is_oracle(path: str) -> bool:
    return Path(path).name == "oracle.parquet"


def oracle_violations(stages: dict[str, dict]) -> list[str]:
    return [f"{name} depends on {dep}" for name, stage in stages.items() for dep in deps_of(stage)
            if is_oracle(dep) and not name.startswith(ORACLE_READERS)]


def test_no_training_stage_depends_on_the_oracle():
    stages = expanded_stages()
    assert stages, "dvc.yaml has no stages"
    assert oracle_violations(stages) == []


def test_the_rule_catches_a_training_stage_reading_the_oracle(tmp_path):
    bad = yaml.safe_load((REPO / "dvc.yaml").read_text())
    bad["stages"]["train_bc"]["deps"].append("data/${task}/oracle.parquet")
    violations = oracle_violations(expanded_stages(project_copy(tmp_path, bad)))
    learner_seeds = yaml.safe_load((REPO / "params.yaml").read_text())["seeds"]["learner"]
    assert violations == [f"train_bc@{algo}-{seed} depends on data/BallCircle/oracle.parquet"
                          for algo in ("bc_all", "bc_safe") for seed in learner_seeds]


def test_learners_read_the_dataset_and_only_collect_writes_the_oracle():
    stages = expanded_stages()
    learners = [n for n in stages if n.startswith("train_") and n != "train_behavior"]
    assert learners and all(any(d.endswith("dataset.parquet") for d in deps_of(stages[n])) for n in learners)
    writers = [n for n, s in stages.items() for o in s["outs"] if is_oracle(o)]
    assert writers == ["collect"]


DSPO_CHAIN = ("train_discriminator@0", "label_safety@0", "train_diffusion@0", "generate@0", "distill_bc@0",
              "evaluate@dspo-0")


def test_dspo_chain_is_complete_and_never_reads_oracle_or_analysis_outputs():
    stages = expanded_stages()
    for name in DSPO_CHAIN:
        assert name in stages, f"dvc.yaml lacks DSPO stage {name}"
        bad = [d for d in deps_of(stages[name]) if is_oracle(d) or "analysis" in d]
        assert bad == [], f"{name} depends on {bad}"
    # the chain is connected: each stage consumes an output of the one before
    outs = {n: set(s["outs"]) for n, s in stages.items()}
    for before, after in zip(DSPO_CHAIN, DSPO_CHAIN[1:]):
        assert outs[before] & set(deps_of(stages[after])), f"{after} does not consume an output of {before}"


def test_no_dspo_or_baseline_stage_consumes_analysis_outputs():
    stages = expanded_stages()
    analysis_outs = {o for n, s in stages.items() if n.startswith("analysis") for o in s["outs"]}
    for name, stage in stages.items():
        if not name.startswith(("analysis", "evaluate@analysis", "report")):
            assert not set(deps_of(stage)) & analysis_outs, name


def test_learner_schema_is_cost_free():
    assert not any("cost" in c or "safe" == c for c in DATASET.columns())


def test_each_stage_lists_its_params_section():
    stages = expanded_stages()
    expected = {"train_behavior": "behavior", "collect": "collect", "train_bc@bc_all-0": "bc.per_algo.bc_all",
                "train_bc@bc_safe-1": "bc.per_algo.bc_safe", "evaluate@bc_all-0": "eval", "evaluate@bc_safe-2": "eval",
                "train_discriminator@0": "disc", "train_diffusion@1": "diffusion", "generate@2": "generate",
                "distill_bc@0": "distill", "evaluate@dspo-0": "eval", "train_baseline@td3bc-0": "td3bc",
                "train_baseline@iql-0": "iql", "train_baseline@cql-0": "cql", "train_baseline@dwbc-0": "dwbc",
                "train_rgm@0": "rgm", "train_cdt_v@0": "cdt_v", "evaluate_baseline@cdt_v-0": "eval"}
    for name, section in expected.items():
        assert section in stages[name]["params"], name
    baseline_sections = {"td3bc", "iql", "cql", "dwbc", "rgm", "cdt_v"}
    for name in [n for n in expected if n.startswith(("train_baseline", "train_rgm", "train_cdt_v"))]:
        listed = set(stages[name]["params"]) & baseline_sections
        assert listed == {expected[name]}, f"{name} must list only its own section, lists {listed}"
    assert "collect" not in stages["train_bc@bc_all-0"]["params"]
    assert "disc" not in stages["train_diffusion@0"]["params"]  # changes reach it through labeled.parquet


def test_learner_seeds_never_reach_the_data_stages():
    """Only the data seed drives train_behavior/collect; a learner stage gets its seed in its command only."""
    stages = expanded_stages()
    for name in ("train_behavior", "collect"):
        assert "seeds.data" in stages[name]["params"] and not {"seeds.learner", "seeds.baseline"} & set(
            stages[name]["params"]), name
    for name, stage in stages.items():
        if name not in ("train_behavior", "collect", "analysis_toy2d", "analysis_fig4", "report"):  # data-seeded
            assert not any(p.startswith("seeds") for p in stage["params"]), f"{name} lists a seeds param"
    assert "--seed 2" in stages["train_discriminator@2"]["cmd"] and "seed2" in " ".join(stages["distill_bc@2"]["outs"])


def test_matrix_lists_come_from_the_params_algorithm_and_seed_lists():
    spec = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert spec["train_bc"]["matrix"] == {"algo": "${algorithms.bc}", "seed": "${seeds.learner}"}
    assert spec["train_baseline"]["matrix"] == {"algo": "${algorithms.baselines}", "seed": "${seeds.baseline}"}
    assert spec["evaluate"]["matrix"] == {"algo": "${algorithms.evaluated}", "seed": "${seeds.learner}"}
    assert spec["evaluate_baseline"]["matrix"] == {"algo": "${algorithms.evaluated_baselines}",
                                                   "seed": "${seeds.baseline}"}
    assert {"algorithms.evaluated", "algorithms.evaluated_baselines", "seeds.learner"} <= set(spec["report"]["params"])


def test_a_one_seed_slice_expands_every_stage_exactly_as_the_full_run(tmp_path):
    """A Ray unit or a `-S seeds.learner=[k]` experiment must hash a stage as the full suite does, or the
    run-cache could never be shared: same command, deps, outs and params keys (no seeds list among them)."""
    full = expanded_stages()
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    k = params["seeds"]["learner"][-1]
    params["seeds"]["learner"], params["seeds"]["baseline"] = [k], params["seeds"]["baseline"][:1]
    root = project_copy(tmp_path, yaml.safe_load((REPO / "dvc.yaml").read_text()))
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    sliced = expanded_stages(root)
    assert any(name.endswith(f"@{k}") for name in sliced)
    for name, stage in sliced.items():
        if name != "report":  # the report reads the seed lists: it is rebuilt for whatever was run
            assert stage == full[name], name


def test_bc_stages_list_the_shared_bc_keys_and_their_own_entry_only():
    """Re-tuning one BC-trained algorithm (`bc.per_algo.<algo>`) must rerun that algorithm's stages alone:
    each stage running the BC trainer lists every shared `bc.*` key and its own `per_algo` entry, never the
    whole section (which holds the other algorithms' entries)."""
    import re

    from dspo.learners.bc import BC_TRAINED, BCConfig

    shared = {f"bc.{f}" for f in BCConfig.model_fields if f != "per_algo"}
    stages = {n: s for n, s in expanded_stages().items() if re.search(r"stages/(train|distill)_bc\.py", s["cmd"])}
    assert len(stages) >= 4
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    assert set(params["bc"]["per_algo"]) == set(BC_TRAINED), "bc.per_algo needs an entry per algorithm (DVC reads it)"
    for name, stage in stages.items():
        algo = re.search(r"--algo (\S+)", stage["cmd"]).group(1)
        bc_keys = {p for p in stage["params"] if p == "bc" or p.startswith("bc.")}
        assert bc_keys == shared | {f"bc.per_algo.{algo}"}, f"{name}: {sorted(bc_keys)}"

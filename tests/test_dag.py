"""The cost-label-free guarantee, checked on the DVC graph itself (property tests on dvc.yaml)."""
from pathlib import Path

import yaml

from dspo.data.schemas import DATASET

REPO = Path(__file__).resolve().parents[1]
ORACLE_READERS = ("evaluate", "analysis")  # stage-name prefixes allowed to read the oracle


def foreach_items(items, params: dict) -> list:
    """A foreach list, or a `${section.key}` reference into params.yaml resolved the way DVC does."""
    if isinstance(items, str):
        value = params
        for key in items.removeprefix("${").removesuffix("}").split("."):
            value = value[key]
        return list(value)
    return list(items)


def expanded_stages(dvc_yaml: Path = REPO / "dvc.yaml", params_yaml: Path = REPO / "params.yaml") -> dict[str, dict]:
    """Expand `foreach` stages into `name@item` the way DVC does (enough for deps/params checks)."""
    spec = yaml.safe_load(dvc_yaml.read_text())
    params = yaml.safe_load(params_yaml.read_text())
    stages = {}
    for name, body in spec["stages"].items():
        if "foreach" in body:
            for item in foreach_items(body["foreach"], params):
                text = yaml.safe_dump(body["do"]).replace("${item}", str(item))
                stages[f"{name}@{item}"] = yaml.safe_load(text)
        else:
            stages[name] = body
    return stages


def deps_of(stage: dict) -> list[str]:
    return [d if isinstance(d, str) else next(iter(d)) for d in stage.get("deps", [])]


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
    bad["stages"]["train_bc"]["do"]["deps"].append("data/${task}/oracle.parquet")
    path = tmp_path / "dvc.yaml"
    path.write_text(yaml.safe_dump(bad))
    violations = oracle_violations(expanded_stages(path))
    assert violations == ["train_bc@bc_all depends on data/${task}/oracle.parquet",
                          "train_bc@bc_safe depends on data/${task}/oracle.parquet"]


def test_learners_read_the_dataset_and_only_collect_writes_the_oracle():
    stages = expanded_stages()
    learners = [n for n in stages if n.startswith("train_") and n != "train_behavior"]
    assert learners and all(any(d.endswith("dataset.parquet") for d in deps_of(stages[n])) for n in learners)
    writers = [n for n, s in stages.items() for o in s.get("outs", []) if is_oracle(o if isinstance(o, str) else next(iter(o)))]
    assert writers == ["collect"]


DSPO_CHAIN = ("train_discriminator", "label_safety", "train_diffusion", "generate", "distill_bc", "evaluate@dspo")


def test_dspo_chain_is_complete_and_never_reads_oracle_or_analysis_outputs():
    stages = expanded_stages()
    for name in DSPO_CHAIN:
        assert name in stages, f"dvc.yaml lacks DSPO stage {name}"
        bad = [d for d in deps_of(stages[name]) if is_oracle(d) or "analysis" in d]
        assert bad == [], f"{name} depends on {bad}"
    # the chain is connected: each stage consumes an output of the one before
    outs = {n: {o if isinstance(o, str) else next(iter(o)) for o in s.get("outs", [])} for n, s in stages.items()}
    for before, after in zip(DSPO_CHAIN, DSPO_CHAIN[1:]):
        assert outs[before] & set(deps_of(stages[after])), f"{after} does not consume an output of {before}"


def test_no_dspo_or_baseline_stage_consumes_analysis_outputs():
    stages = expanded_stages()
    analysis_outs = {o if isinstance(o, str) else next(iter(o)) for n, s in stages.items() if n.startswith("analysis")
                     for o in s.get("outs", [])}
    for name, stage in stages.items():
        if not name.startswith(("analysis", "evaluate@analysis", "report")):
            assert not set(deps_of(stage)) & analysis_outs, name


def test_learner_schema_is_cost_free():
    assert not any("cost" in c or "safe" == c for c in DATASET.columns())


def test_each_stage_lists_its_params_section():
    stages = expanded_stages()
    expected = {"train_behavior": "behavior", "collect": "collect", "train_bc@bc_all": "bc",
                "train_bc@bc_safe": "bc", "evaluate@bc_all": "eval", "evaluate@bc_safe": "eval",
                "train_discriminator": "disc", "train_diffusion": "diffusion", "generate": "generate",
                "distill_bc": "distill", "evaluate@dspo": "eval", "train_baseline@td3bc": "td3bc",
                "train_baseline@iql": "iql", "train_baseline@cql": "cql", "train_baseline@dwbc": "dwbc",
                "train_rgm": "rgm", "train_cdt_v": "cdt_v", "evaluate@cdt_v": "eval"}
    for name, section in expected.items():
        assert section in stages[name]["params"], name
    baseline_sections = {"td3bc", "iql", "cql", "dwbc", "rgm", "cdt_v"}
    for name in [n for n in expected if n.startswith(("train_baseline", "train_rgm", "train_cdt_v"))]:
        listed = {p for p in stages[name]["params"] if isinstance(p, str)} & baseline_sections
        assert listed == {expected[name]}, f"{name} must list only its own section, lists {listed}"
    assert "collect" not in stages["train_bc@bc_all"]["params"]
    assert "disc" not in stages["train_diffusion"]["params"]  # changes reach it through labeled.parquet


def test_foreach_lists_come_from_the_params_algorithm_lists():
    spec = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert spec["train_bc"]["foreach"] == "${algorithms.bc}"
    assert spec["train_baseline"]["foreach"] == "${algorithms.baselines}"
    assert spec["evaluate"]["foreach"] == "${algorithms.evaluated}"
    assert "algorithms.evaluated" in spec["report"]["params"]

"""The cost-label-free guarantee, checked on the DVC graph itself (property tests on dvc.yaml)."""
from pathlib import Path

import yaml

from dspo.schemas import DATASET

REPO = Path(__file__).resolve().parents[1]
ORACLE_READERS = ("evaluate", "analysis")  # stage-name prefixes allowed to read the oracle


def expanded_stages(dvc_yaml: Path = REPO / "dvc.yaml") -> dict[str, dict]:
    """Expand `foreach` stages into `name@item` the way DVC does (enough for deps/params checks)."""
    spec = yaml.safe_load(dvc_yaml.read_text())
    stages = {}
    for name, body in spec["stages"].items():
        if "foreach" in body:
            items = body["foreach"]
            for item in (items if isinstance(items, list) else list(items)):
                text = yaml.safe_dump(body["do"]).replace("${item}", str(item))
                stages[f"{name}@{item}"] = yaml.safe_load(text)
        else:
            stages[name] = body
    return stages


def deps_of(stage: dict) -> list[str]:
    return [d if isinstance(d, str) else next(iter(d)) for d in stage.get("deps", [])]


def oracle_violations(stages: dict[str, dict]) -> list[str]:
    return [f"{name} depends on {dep}" for name, stage in stages.items() for dep in deps_of(stage)
            if "oracle" in dep and not name.startswith(ORACLE_READERS)]


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
    writers = [n for n, s in stages.items() for o in s.get("outs", []) if "oracle" in (o if isinstance(o, str) else next(iter(o)))]
    assert writers == ["collect"]


def test_learner_schema_is_cost_free():
    assert not any("cost" in c or "safe" == c for c in DATASET.columns())


def test_each_stage_lists_its_params_section():
    stages = expanded_stages()
    expected = {"train_behavior": "behavior", "collect": "collect", "train_bc@bc_all": "bc",
                "train_bc@bc_safe": "bc", "evaluate@bc_all": "eval", "evaluate@bc_safe": "eval"}
    for name, section in expected.items():
        assert section in stages[name]["params"], name
    assert "collect" not in stages["train_bc@bc_all"]["params"]

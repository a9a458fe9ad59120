"""The suite as independent units of `dvc repro`: per task, the data, one unit per seed, then the report.

A unit reproduces a slice of one task's pipeline in a workspace of its own (a git worktree of one
commit, the task's params, the shared DVC cache), so units never contend for a workspace lock and
every stage a unit runs lands in the shared run-cache. The last unit of a task runs the whole
pipeline: every stage is then restored from the run-cache, only the report is computed. Which stage
belongs to which seed is read off dvc.yaml: a stage whose `matrix.seed` / `foreach` is
`${seeds.learner}` or `${seeds.baseline}` joins the unit of that seed list and seed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

import yaml
from pydantic import Field, model_validator

from dspo.core.config import PosInt, Section
from dspo.core.errors import ParamError
from dspo.data.tasks import get_task

DATA_TARGET = "collect"  # the data stage (and, through its deps, train_behavior)
REPORT = "report"  # the stage that reads every evaluation: the last unit of a task
SEED_LISTS = {"${seeds.learner}": "learner", "${seeds.baseline}": "baseline"}


class SuiteConfig(Section):
    """params.yaml `suite`: which tasks, how many units at once, per-task params."""

    section: ClassVar[str] = "suite"
    tasks: list[str] = Field(min_length=1)
    jobs: PosInt  # units run side by side; each gets cores // jobs threads
    overrides: dict[str, dict[str, Any]]  # task -> {"section.key": value} applied to that task's params

    @model_validator(mode="after")
    def _known(self) -> "SuiteConfig":
        for task in self.tasks:
            get_task(task)  # unknown task: UnknownTaskError naming the valid ones
        if len(set(self.tasks)) != len(self.tasks):
            raise ValueError(f"suite.tasks repeats a task: {self.tasks}")
        stray = sorted(set(self.overrides) - set(self.tasks))
        if stray:
            raise ValueError(f"suite.overrides names tasks not in suite.tasks: {stray}")
        return self


@dataclass(frozen=True)
class Unit:
    """One `dvc repro` in its own workspace: `targets` of `task` (empty: the whole pipeline)."""

    task: str
    name: str  # "data", "learner-<k>", "baseline-<k>", "report"
    targets: tuple[str, ...] = ()
    after: tuple[str, ...] = field(default=())  # names of the same task's units that must finish first

    @property
    def key(self) -> str:
        return f"{self.task}/{self.name}"


# mappings keyed by algorithm name: an override may add an entry (`bc.per_algo.dspo.steps`), which the
# section's config model then checks (`BCConfig` refuses names BC does not train and unknown keys)
OPEN_MAPPINGS = ("per_algo",)


def task_params(params: dict, task: str, overrides: dict[str, Any]) -> dict:
    """A copy of `params` with `task` set and dotted `overrides` applied.

    Each key must already exist, except beneath an open mapping (OPEN_MAPPINGS), where entries are added."""
    out = yaml.safe_load(yaml.safe_dump(params))
    out["task"] = task
    for dotted, value in overrides.items():
        node, keys = out, dotted.split(".")
        for i, k in enumerate(keys):
            # an open mapping's entry (keys[i - 1] open) or a key of that entry (keys[i - 2] open) may be new
            if k not in node and any(p in OPEN_MAPPINGS for p in keys[max(0, i - 2):i]):
                node[k] = {} if i < len(keys) - 1 else None
            if k not in node or (i < len(keys) - 1 and not isinstance(node[k], dict)):
                raise ParamError(f"suite.overrides.{task}: {dotted!r} is not a params key")
            if i < len(keys) - 1:
                node = node[k]
        node[keys[-1]] = value
    return out


def split_assignment(text: str, option: str, item: str, expected: str) -> tuple[str, str]:
    """`section.key=raw` -> (key, raw); the one check behind --set, --grid and --control (the error names the option)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or "." not in key or not raw:
        raise ParamError(f"{option} {item!r}: expected {expected}")
    return key, raw


def parse_sets(items: list[str] | None) -> dict[str, Any]:
    """`--set section.key=value` options -> {"section.key": value} (values parsed as YAML: numbers, lists, null)."""
    out = {}
    for item in items or []:
        key, value = split_assignment(item, "--set", item, "section.key=value")
        out[key] = yaml.safe_load(value)
    return out


def seed_groups(dvc_spec: dict) -> dict[str, str]:
    """Stage group -> "learner" | "baseline", for groups expanded over a seed list."""
    out = {}
    for name, body in dvc_spec["stages"].items():
        ref = body.get("matrix", {}).get("seed") if "matrix" in body else body.get("foreach")
        if ref in SEED_LISTS:
            out[name] = SEED_LISTS[ref]
    return out


def _paths(body: dict, key: str) -> list[str]:
    """A stage's dep or out paths as written in dvc.yaml (templates unexpanded); metrics and plots are outs."""
    keys = ("outs", "metrics", "plots") if key == "outs" else (key,)
    body = body.get("do", body)  # foreach stages nest theirs under `do`
    items = [i for k in keys for i in body.get(k, [])]
    return [next(iter(i)) if isinstance(i, dict) else i for i in items]


def upstream(dvc_spec: dict, groups: set[str]) -> set[str]:
    """`groups` and every stage group whose outputs they read, transitively (dvc.yaml paths, one inside the other)."""
    stages = dvc_spec["stages"]
    near = lambda a, b: a == b or a.startswith(b.rstrip("/") + "/") or b.startswith(a.rstrip("/") + "/")  # noqa
    found, todo = set(groups), list(groups)
    while todo:
        deps = _paths(stages[todo.pop()], "deps")
        for name, body in stages.items():
            if name not in found and any(near(d, o) for d in deps for o in _paths(body, "outs")):
                found.add(name)
                todo.append(name)
    return found


def plan_task(task: str, params: dict, dvc_spec: dict, stage_names: list[str]) -> list[Unit]:
    """The units of one task: data first, then one unit per (seed list, seed), then the stages none of
    those runs (seed-free analyses, e.g. the toy), so the report unit computes only the report."""
    groups = seed_groups(dvc_spec)
    units = [Unit(task, "data", (DATA_TARGET,))]
    for kind in ("baseline", "learner"):  # the baselines' unit is the longest: start it first
        for seed in params["seeds"][kind]:
            pattern = re.compile(rf"^(?P<group>[^@]+)@(?:.*-)?{seed}$")
            targets = tuple(n for n in stage_names
                            if (m := pattern.match(n)) and groups.get(m.group("group")) == kind)
            if targets:
                units.append(Unit(task, f"{kind}-{seed}", targets, after=("data",)))
    covered = upstream(dvc_spec, set(groups) | {DATA_TARGET}) | {REPORT}
    rest = tuple(n for n in stage_names if n.split("@")[0] not in covered)
    if rest:
        units.append(Unit(task, "analyses", rest, after=("data",)))
    units.append(Unit(task, "report", (), after=tuple(u.name for u in units)))
    return units

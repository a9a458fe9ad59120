"""The suite as independent units of `dvc repro`: per task, the data, units per seed, then the report.

A unit reproduces a slice of one task's pipeline in a workspace of its own (a git worktree of one
commit, the task's params, the shared DVC cache), so units never contend for a workspace lock and
every stage a unit runs lands in the shared run-cache. The last unit of a task runs the whole
pipeline: every stage is then restored from the run-cache, only the report is computed. Which stage
belongs to which seed is read off dvc.yaml: a stage whose `matrix.seed` / `foreach` is
`${seeds.learner}` or `${seeds.baseline}` joins the unit of that seed list and seed. With `suite.units:
chain` a seed's stages are cut further into chains that exchange no file (BC-All, BC-Safe, DSPO's chain,
the true-label chain, each baseline), so two cores are kept busy to the end instead of waiting on the
longest seed; units start longest first, by the stage times of the last measured full run.
"""
from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Mapping

import yaml
from pydantic import Field, model_validator

from dspo.core.config import PosInt, Section
from dspo.core.errors import ParamError
from dspo.data.tasks import get_task

DATA_TARGET = "collect"  # the data stage (and, through its deps, train_behavior)
REPORT = "report"  # the stage that reads every evaluation: the last unit of a task
SEED_LISTS = {"${seeds.learner}": "learner", "${seeds.baseline}": "baseline"}
STAGE_TIMES = Path("benchmarks") / "results" / "repro_stages.json"  # the last timed full run
TEMPLATE = re.compile(r"\$\{([^}]+)\}")


class SuiteConfig(Section):
    """params.yaml `suite`: which tasks, how many units at once, per-task params."""

    section: ClassVar[str] = "suite"
    tasks: list[str] = Field(min_length=1)
    jobs: PosInt  # units run side by side; each gets cores // jobs threads
    units: Literal["seed", "chain"]  # one unit per seed, or per chain of a seed's stages that share files
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


def suite_task_params(params: dict, task: str) -> dict:
    """`task`'s params as the suite runs it: `suite.overrides[task]` applied (behavior agents, env steps, seeds).

    Everything that runs a task through the pipeline (the suite, tuning, controls) starts here, so a knob tuned
    on a task is tuned on the data the suite collects for it, not on params.yaml's defaults."""
    return task_params(params, task, SuiteConfig.from_params(params).overrides.get(task, {}))


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


def resolve(value, params: dict):
    """`${a.b}` -> params["a"]["b"] (what dvc.yaml's matrix/foreach lists refer to); literals pass through."""
    if isinstance(value, str) and value.startswith("${") and value.endswith("}"):
        for key in value[2:-1].split("."):
            params = params[key]
        return params
    return value


def _interpolate(text: str, scope: dict) -> str:
    return TEMPLATE.sub(lambda m: str(resolve(m.group(0), scope)), text)


def expand_stages(dvc_spec: dict, params: dict) -> dict[str, tuple[list[str], list[str]]]:
    """Stage name -> (dep paths, out paths) as DVC expands them: `name`, `name@item` (foreach), `name@v1-v2`
    (matrix, key order), `${item...}` and `${params...}` resolved in the paths."""
    out = {}
    for name, body in dvc_spec["stages"].items():
        if "foreach" in body:
            items = [(f"{name}@{item}", item) for item in resolve(body["foreach"], params)]
        elif "matrix" in body:
            keys, axes = list(body["matrix"]), [resolve(v, params) for v in body["matrix"].values()]
            items = [(f"{name}@" + "-".join(map(str, combo)), dict(zip(keys, combo)))
                     for combo in itertools.product(*axes)]
        else:
            items = [(name, None)]
        for stage, item in items:
            scope = {**params, "item": item}
            out[stage] = ([_interpolate(p, scope) for p in _paths(body, "deps")],
                          [_interpolate(p, scope) for p in _paths(body, "outs")])
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


def _near(a: str, b: str) -> bool:
    """Two DVC paths that touch: equal, or one inside the other (a stage reading a file of an output folder)."""
    return a == b or a.startswith(b.rstrip("/") + "/") or b.startswith(a.rstrip("/") + "/")


def _reads(deps: list[str], outs: list[str]) -> bool:
    return any(_near(d, o) for d in deps for o in outs)


def _reach(paths: Mapping[str, tuple[list[str], list[str]]], start: set[str], down: bool) -> set[str]:
    """`start` and every node that reads their outputs (`down`) or whose outputs they read, transitively."""
    found, todo = set(start) & set(paths), [s for s in start if s in paths]
    while todo:
        deps, outs = paths[todo.pop()]
        for name, (other_deps, other_outs) in paths.items():
            if name not in found and (_reads(other_deps, outs) if down else _reads(deps, other_outs)):
                found.add(name)
                todo.append(name)
    return found


def upstream(dvc_spec: dict, groups: set[str]) -> set[str]:
    """`groups` and every stage group whose outputs they read, transitively (dvc.yaml paths, one inside the other)."""
    return _reach({name: (_paths(body, "deps"), _paths(body, "outs")) for name, body in dvc_spec["stages"].items()},
                  groups, down=False)


def downstream(paths: Mapping[str, tuple[list[str], list[str]]], stages: set[str]) -> set[str]:
    """`stages` and every stage that reads their outputs, transitively (what must rerun when they do)."""
    return _reach(paths, stages, down=True)


def keep_units(units: list[Unit], keep) -> list[Unit]:
    """The units `keep(unit)` accepts, each waiting only on the kept units it waited on."""
    kept = [u for u in units if keep(u)]
    names = {(u.task, u.name) for u in kept}
    return [Unit(u.task, u.name, u.targets, after=tuple(a for a in u.after if (u.task, a) in names)) for u in kept]


def stage_family(name: str) -> str:
    """A stage name without its seed (`train_bc@bc_all-2` -> `train_bc@bc_all`): the key of its measured time."""
    return re.sub(r"[@-]\d+$", "", name)


def chains(targets: tuple[str, ...], paths: Mapping[str, tuple[list[str], list[str]]]) -> list[tuple[str, ...]]:
    """`targets` cut into groups that exchange no file (connected parts of their out -> dep graph), in order."""
    root = {t: t for t in targets}

    def find(t: str) -> str:
        while root[t] != t:
            t = root[t]
        return t

    for a, b in itertools.permutations(targets, 2):
        if _reads(paths[b][0], paths[a][1]):
            root[find(b)] = find(a)
    parts: dict[str, list[str]] = {}
    for t in targets:
        parts.setdefault(find(t), []).append(t)
    return [tuple(p) for p in parts.values()]


def _root(part: tuple[str, ...], paths: Mapping[str, tuple[list[str], list[str]]]) -> str:
    """The first stage of a chain: one that reads nothing the chain's other stages write (names its unit)."""
    return next(t for t in part if not any(_reads(paths[t][0], paths[o][1]) for o in part if o != t))


def estimate(targets: tuple[str, ...], cost: Mapping[str, float]) -> float:
    """Seconds a unit should take by the measured stage times (a stage never measured counts the median)."""
    if not cost:
        return 0.0
    typical = sorted(cost.values())[len(cost) // 2]
    return sum(cost.get(stage_family(t), typical) for t in targets)


def plan_task(task: str, params: dict, dvc_spec: dict, units: str = "seed",
              cost: Mapping[str, float] | None = None) -> list[Unit]:
    """The units of one task: data first, then one unit per (seed list, seed) -- or, with `units="chain"`, per
    chain of that seed's stages -- then the stages none of those runs (seed-free analyses, e.g. the toy), so the
    report unit computes only the report. `cost` (stage family -> seconds) orders the units longest first."""
    paths = expand_stages(dvc_spec, params)
    names = list(paths)
    groups = seed_groups(dvc_spec)
    work = []
    for kind in ("baseline", "learner"):  # the baselines' unit is the longest: start it first
        for seed in params["seeds"][kind]:
            pattern = re.compile(rf"^(?P<group>[^@]+)@(?:.*-)?{seed}$")
            targets = tuple(n for n in names if (m := pattern.match(n)) and groups.get(m.group("group")) == kind)
            parts = chains(targets, paths) if units == "chain" else [targets] if targets else []
            for part in parts:
                suffix = "" if len(parts) == 1 else "." + stage_family(_root(part, paths))
                work.append(Unit(task, f"{kind}-{seed}{suffix}", part, after=("data",)))
    covered = upstream(dvc_spec, set(groups) | {DATA_TARGET}) | {REPORT}
    rest = tuple(n for n in names if n.split("@")[0] not in covered)
    if rest:
        work.append(Unit(task, "analyses", rest, after=("data",)))
    work.sort(key=lambda u: -estimate(u.targets, cost or {}))  # stable: the plan's order without a measurement
    planned = [Unit(task, "data", (DATA_TARGET,)), *work]
    return [*planned, Unit(task, "report", (), after=tuple(u.name for u in planned))]


def stage_costs(repo: Path) -> dict[str, float]:
    """Measured seconds per stage family from the last timed full run (benchmarks/results/repro_stages.json,
    written by benchmarks/repro_stages.py), to start long units first; empty when there is none."""
    path = repo / STAGE_TIMES
    if not path.exists():
        return {}
    per_stage = json.loads(path.read_text()).get("stages", {})
    costs: dict[str, list[float]] = {}
    for name, seconds in per_stage.items():
        costs.setdefault(stage_family(name), []).append(float(seconds))
    return {family: sum(v) / len(v) for family, v in costs.items()}

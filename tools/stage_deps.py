"""Which package files each DVC stage runs, and which of them its `deps:` in dvc.yaml miss.

A stage's code closure: the stage script, every `dspo` module it imports (statically, anywhere in
the file, following imports module by module, with each package's `__init__.py`), and the
closure of every code file its deps list (how a stage that imports a learner module by name,
like `train_baseline@td3bc`, declares it). Importing `dspo.learners.registry` imports every
module under `dspo/learners` (it discovers the algorithms there).

    python tools/stage_deps.py            # one line per stage that misses a dep, with the lines to add
Exit status 1 when something is missing (tests/test_stage_deps.py runs the same check).
"""
from __future__ import annotations

import ast
import re
import sys
from functools import lru_cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "dspo"
DISCOVERS_ALL_LEARNERS = "dspo/learners/registry.py"


def module_file(module: str, root: Path = REPO) -> str | None:
    """dspo.a.b -> 'dspo/a/b.py' or 'dspo/a/b/__init__.py' (relative to root), None if neither exists."""
    base = root / Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate.relative_to(root).as_posix()
    return None


@lru_cache(maxsize=None)
def runs_nothing(path: str, root: Path = REPO) -> bool:
    """A package `__init__.py` holding only its docstring: importing it executes no code, so no stage depends on it."""
    if not path.endswith("__init__.py"):
        return False
    tree = ast.parse((root / path).read_text())
    return all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in tree.body)


def _with_parents(module: str, root: Path) -> set[str]:
    parts, out = module.split("."), set()
    for i in range(1, len(parts) + 1):
        path = module_file(".".join(parts[:i]), root)
        if path and not runs_nothing(path, root):
            out.add(path)
    return out


@lru_cache(maxsize=None)
def direct_imports(path: str, root: Path = REPO) -> frozenset[str]:
    """Package files a file imports itself (with the `__init__.py` of every package on the way)."""
    tree = ast.parse((root / path).read_text(), filename=path)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            if name == PACKAGE or name.startswith(PACKAGE + "."):
                found |= _with_parents(name, root) if module_file(name, root) else set()
    if path == DISCOVERS_ALL_LEARNERS:
        found |= {p.relative_to(root).as_posix() for p in (root / "dspo" / "learners").rglob("*.py")}
    return frozenset(found - {path})


def closure(paths: set[str], root: Path = REPO) -> set[str]:
    """Every package file reachable from `paths` through imports (the paths included)."""
    seen, todo = set(), list(paths)
    while todo:
        path = todo.pop()
        if path in seen or not (root / path).exists():
            continue
        seen.add(path)
        todo.extend(direct_imports(path, root))
    return seen


def covered(path: str, deps: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)


def stage_specs(root: Path = REPO) -> dict[str, tuple[str, list[str]]]:
    """name -> (command, deps) for every stage, foreach and ${...} resolved by DVC itself."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return {stage.name: (stage.cmd, [d.def_path for d in stage.deps]) for stage in repo.index.stages}


def missing_deps(root: Path = REPO) -> dict[str, list[str]]:
    """Per stage, the files of its code closure that its deps do not cover."""
    out = {}
    for name, (cmd, deps) in stage_specs(root).items():
        scripts = set(re.findall(r"(stages/\w+\.py)", cmd))
        code = {d for d in deps if d.endswith(".py")} | {
            p.relative_to(root).as_posix() for d in deps if (root / d).is_dir() and d.startswith(PACKAGE)
            for p in (root / d).rglob("*.py")}
        need = closure(scripts | code, root)
        lacking = sorted(p for p in need if not covered(p, deps))
        if lacking:
            out[name] = lacking
    return out


def main() -> int:
    missing = missing_deps()
    for name, files in missing.items():
        print(f"{name}: deps miss\n" + "".join(f"      - {f}\n" for f in files), end="")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Patch safety-gymnasium 1.0.0 so that it imports on Python 3.11 (stdlib only, idempotent).

Python 3.11 rejects unhashable (mutable) dataclass defaults, and safety-gymnasium's asset
dataclasses declare `color: np.array = COLOR['goal']` (a numpy array), so `import
safety_gymnasium` fails with "mutable default <class 'numpy.ndarray'> ... use default_factory".
This script rewrites every such field under `safety_gymnasium/assets/` to
`color: np.array = field(default_factory=lambda: COLOR['goal'])` and adds `field` to the file's
`from dataclasses import ...` line. Defaults that are immutable (e.g. `GROUP[...]`, plain ints)
are left alone. Running it again changes nothing and says so.

Usage: python tools/fix_safety_gymnasium.py [PACKAGE_DIR]
Run it with the interpreter of the environment to patch (e.g. `.venv/bin/python`): the package
is located with importlib's find_spec, which does not execute the (broken) package.
Exit status: 0 patched or already patched, 1 package not found.
"""
from __future__ import annotations

import importlib.util
import re
import sys
import sysconfig
from pathlib import Path

# A dataclass field annotated as a numpy array whose default is not already `field(...)`.
FIELD_RE = re.compile(
    r"^(?P<head>\s+\w+\s*:\s*np\.(?:nd)?array\s*=\s*)(?!field\()(?P<expr>[^#\n]*?)(?P<tail>\s*(#.*)?)$"
)
# Defaults that evaluate to a mutable object: a COLOR[...] lookup (numpy arrays), a numpy
# constructor, or a list / dict / set display.
MUTABLE_RE = re.compile(r"^(COLOR\[|np\.|numpy\.|\[|\{)")
IMPORT_RE = re.compile(r"^from dataclasses import (?P<names>[^()\n]+)$", re.M)


def find_package(argv: list[str]) -> Path | None:
    """The safety_gymnasium package directory, without importing it."""
    if argv:
        return Path(argv[0])
    try:
        spec = importlib.util.find_spec("safety_gymnasium")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    for key in ("purelib", "platlib"):  # fall back to this interpreter's site-packages
        cand = Path(sysconfig.get_paths()[key]) / "safety_gymnasium"
        if (cand / "__init__.py").is_file():
            return cand
    return None


def patch_source(src: str) -> tuple[str, list[str]]:
    """Return the patched source and one line per change."""
    changes, out = [], []
    for line in src.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        m = FIELD_RE.match(body)
        if m and MUTABLE_RE.match(m["expr"].strip()):
            new = f"{m['head']}field(default_factory=lambda: {m['expr'].strip()}){m['tail']}"
            changes.append(f"  {body.strip()}  ->  {new.strip()}")
            line = new + line[len(body):]
        out.append(line)
    new_src = "".join(out)
    if changes:  # the rewritten fields need `field` from dataclasses
        m = IMPORT_RE.search(new_src)
        if m is None:
            new_src = "from dataclasses import field\n" + new_src
            changes.append("  added: from dataclasses import field")
        else:
            names = [n.strip() for n in m["names"].split(",") if n.strip()]
            if "field" not in names:
                names = sorted(names + ["field"], key=lambda n: (n[0].islower(), n))
                new_line = f"from dataclasses import {', '.join(names)}"
                new_src = new_src[: m.start()] + new_line + new_src[m.end():]
                changes.append(f"  {m.group(0)}  ->  {new_line}")
    return new_src, changes


def main(argv: list[str]) -> int:
    pkg = find_package(argv)
    if pkg is None or not (pkg / "assets").is_dir():
        print("safety_gymnasium is not installed for", sys.executable, file=sys.stderr)
        print("install it with: pip install --no-deps safety-gymnasium==1.0.0", file=sys.stderr)
        return 1
    n_files = 0
    for path in sorted((pkg / "assets").rglob("*.py")):
        src = path.read_text(encoding="utf-8")
        new_src, changes = patch_source(src)
        if new_src != src:
            path.write_text(new_src, encoding="utf-8")
            n_files += 1
            print(f"patched {path.relative_to(pkg.parent)}:")
            print("\n".join(changes))
    if n_files:
        print(f"fix_safety_gymnasium: patched {n_files} file(s) under {pkg / 'assets'}")
    else:
        print(f"fix_safety_gymnasium: nothing to do, {pkg} is already patched")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

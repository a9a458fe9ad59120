"""Where does a `dvc repro` spend its time? Runs it, timestamps every stage as DVC starts it, prints a table.

    python benchmarks/repro_stages.py [--force] [--workdir DIR] [--json benchmarks/results/repro_stages.json]

DVC runs stages one after another and prints "Running stage 'name':" as each starts; a stage's wall time is
the time from its line to the next stage's line (or to the end of the run), so a stage's share includes
DVC's own bookkeeping for it (hashing and caching its outputs). `--force` reruns every stage and bypasses the
run-cache (`dvc repro -f`): the cold-start cost of the pipeline, what a new user's `make repro` pays after
setup. Stages restored from the run-cache or unchanged are counted apart. The families (`train_diffusion`,
`evaluate`, ...) sum the `@` instances of one stage. The thread count is the stage's own (every core unless
`DSPO_THREADS` caps it). The stage functions' own wall times (`.dvc/tmp/dspo-stage-times.jsonl`) are summed
beside it, so the rest -- process start-up, imports, DVC's hashing and locking -- shows as overhead.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterable, List, Optional

import typer

from dspo.core.artifacts import write_json
from dspo.core.cli import TIMINGS_LOG
from dspo.suite.local import RAN, RESTORED

REPO = Path(__file__).resolve().parents[1]
RUNNING = re.compile("^" + re.escape(RAN) + r"([^']+)'")  # the suite's executors read the same lines
SKIPPED = re.compile(r"^Stage '([^']+)' (?:" + re.escape(RESTORED) + "|didn't change)")
app = typer.Typer(add_completion=False)


def stage_times(events: Iterable[tuple[float, str]], end: float) -> tuple[dict[str, float], list[str]]:
    """(timestamp, line) events of a repro's output -> ({stage: seconds it ran}, [stages skipped or restored])."""
    times: dict[str, float] = {}
    skipped: list[str] = []
    current: Optional[tuple[str, float]] = None
    for stamp, line in events:
        ran, skip = RUNNING.match(line), SKIPPED.match(line)
        if ran or skip:
            if current is not None:  # the previous stage ends where the next one is announced
                times[current[0]] = times.get(current[0], 0.0) + stamp - current[1]
                current = None
        if ran:
            current = (ran.group(1), stamp)
        elif skip:
            skipped.append(skip.group(1))
    if current is not None:
        times[current[0]] = times.get(current[0], 0.0) + end - current[1]
    return times, skipped


def families(times: dict[str, float]) -> dict[str, tuple[int, float]]:
    """{stage family (name before '@'): (instances, seconds)}, largest first."""
    out: dict[str, tuple[int, float]] = {}
    for name, seconds in times.items():
        family = name.split("@", 1)[0]
        count, total = out.get(family, (0, 0.0))
        out[family] = (count + 1, total + seconds)
    return dict(sorted(out.items(), key=lambda kv: -kv[1][1]))


def logged_seconds(log: Path, skip_lines: int) -> float:
    """Seconds the stage functions themselves report (dspo.core.cli's timings log) past its first `skip_lines`."""
    if not log.exists():
        return 0.0
    return sum(json.loads(line)["seconds"] for line in log.read_text().splitlines()[skip_lines:] if line.strip())


def table(times: dict[str, float], skipped: list[str], wall: float) -> str:
    lines = ["| stage family | stages run | seconds | share |", "|---|---|---|---|"]
    for family, (count, seconds) in families(times).items():
        lines.append(f"| {family} | {count} | {seconds:.0f} | {seconds / max(wall, 1e-9):.0%} |")
    lines.append(f"| **total** ({len(times)} run, {len(skipped)} skipped or restored) | | **{wall:.0f}** "
                 f"({wall / 60:.1f} min) | |")
    return "\n".join(lines)


@app.command()
def main(force: bool = typer.Option(False, help="dvc repro -f: rerun every stage, no run-cache"),
         workdir: Path = typer.Option(REPO, help="the DVC project to reproduce"),
         json_out: Optional[Path] = typer.Option(None, "--json", help="also write the timings here"),
         targets: List[str] = typer.Argument(None, help="dvc repro targets (default: the whole pipeline)")) -> None:
    cmd = ["dvc", "repro", *(["-f"] if force else []), *(targets or [])]
    log = workdir / TIMINGS_LOG
    logged_before = len(log.read_text().splitlines()) if log.exists() else 0
    start = time.time()
    events: list[tuple[float, str]] = []
    proc = subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    assert proc.stdout is not None
    for line in proc.stdout:  # echo DVC's and the stages' output as it comes, stamped for the table
        sys.stdout.write(line)
        events.append((time.time(), line.rstrip("\n")))
    rc = proc.wait()
    end = time.time()
    times, skipped = stage_times(events, end)
    print(table(times, skipped, end - start))
    inside, took = logged_seconds(log, logged_before), sum(times.values())
    print(f"\nInside the stage functions: {inside:.0f} s; Python start-up, imports and DVC's own work: "
          f"{took - inside:.0f} s of the {took:.0f} s the stages took.")
    if json_out is not None:
        write_json({"command": " ".join(cmd), "returncode": rc, "wall_seconds": round(end - start, 1),
                    "stage_function_seconds": round(inside, 1),
                    "stages": {k: round(v, 1) for k, v in times.items()}, "skipped": skipped,
                    "families": {k: {"stages": c, "seconds": round(s, 1)} for k, (c, s) in families(times).items()}},
                   json_out)
    if rc:
        raise typer.Exit(rc)


if __name__ == "__main__":
    app()

"""Choose a knob on the TUNING block: run a grid of params overrides through the pipeline and rank them.

    python scripts/tune.py --task BallCircle --algo analysis_oracle_dspo \
        --grid generate.return_range=demos,labeled_safe --grid distill.generated_share=0.25,null
    python scripts/tune.py --task BallCircle --algo cql --grid cql.cql_weight=1.0,5.0,10.0
    python scripts/tune.py --task BallCircle --algo dspo --control generate.guidance=0 \
        --control "distill.source=unlabeled;distill.actions=generated" \
        --control "distill.source=labeled_safe;distill.actions=generated;distill.labeled_share=0"
    (real-data controls keep their recorded actions: distill.actions=inverse_dynamics relabels generated ones only,
    and refuses a real source rather than silently doing nothing)

Each configuration runs `dvc repro evaluate@<algo>-<seed>` for every seed in a worktree of HEAD
sharing the DVC cache (unchanged stages are restored), and only the tuning block is read. Writes
reports/tuning/<task>/<algo>--<knobs>.{json,md}: every configuration per seed, the rule, the chosen one and
the budget (number of configurations), so methods and baselines can be given the same budget.

With `--control` (repeatable; `key=value;key=value` for one control of several overrides) nothing is
chosen: params.yaml and each control run the same way and are read on the TEST block, with P(params.yaml
beats the control) over seeds, into reports/<task>/controls/<algo>.{json,md} (the ablation report).
"""
import os
from pathlib import Path
from typing import List, Optional

import typer

from dspo.core.cli import stage
from dspo.suite.local import cache_dir_of
from dspo.suite.run import check_clean
from dspo.core.errors import ParamError
from dspo.suite.tune import parse_controls, parse_grid, parse_seeds, run_controls, run_tuning, tuning_stem

REPO = Path(__file__).resolve().parents[1]
app = typer.Typer(add_completion=False)


@app.command()
@stage
def main(task: str = typer.Option(..., help="task name from the registry"),
         algo: str = typer.Option(..., help="an evaluated algorithm (algorithms.evaluated or evaluated_baselines)"),
         grid: Optional[List[str]] = typer.Option(None, help="section.key=value1,value2 (repeat: cartesian product)"),
         control: Optional[List[str]] = typer.Option(None, help="section.key=value[;...]: one control each, read on "
                                                     "the test block beside params.yaml (not with --grid)"),
         params: Path = typer.Option(REPO / "params.yaml", help="base params file"),
         workdir: Path = typer.Option(REPO / ".suite" / "tune", help="worktrees and logs (git- and dvc-ignored)"),
         out_dir: Path = typer.Option(REPO / "reports" / "tuning", help="where <task>/<algo>--<knobs>.{json,md} go"),
         threads: int = typer.Option(os.cpu_count() or 1, help="threads of each configuration's stages"),
         jobs: Optional[int] = typer.Option(None, help="configurations at once after the first "
                                            "[default: cores // threads]"),
         seeds: Optional[str] = typer.Option(None, help="comma-separated seeds to run every configuration on, "
                                             "instead of params' seeds.learner / seeds.baseline (e.g. 0,1,2)")) -> None:
    jobs = jobs if jobs is not None else max(1, (os.cpu_count() or 1) // threads)
    seed_list = parse_seeds(seeds) if seeds is not None else None
    if control:
        if grid:
            raise ParamError("--grid chooses on the tuning block, --control reports on the test block: use one")
        result = run_controls(REPO, params, task, algo, parse_controls(control), workdir.resolve(),
                              REPO / "reports" / task / "controls" / algo, check_clean(REPO), cache_dir_of(REPO),
                              threads, jobs, seed_list)
        for row in result["rows"]:
            typer.echo(f"{row['config']}: reward {row['reward_mean']:.3f}, cost {row['cost_mean']:.2f}")
        return
    configs = parse_grid(grid or [])
    out = out_dir / task / tuning_stem(algo, configs, seed_list)
    result = run_tuning(REPO, params, task, algo, configs, workdir.resolve(), out, check_clean(REPO),
                        cache_dir_of(REPO), threads, jobs, seed_list)
    typer.echo(f"chosen on the tuning block ({result['budget']} configurations): {result['chosen']}")


if __name__ == "__main__":
    app()

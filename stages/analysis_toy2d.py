"""Stage analysis_toy2d: the paper's Fig. 3 on a 2-D toy (return, safety) -- with and without the
return-agnostic vCLUB term. Task-independent; a few seconds on CPU."""
from pathlib import Path

import typer

from dspo.core.artifacts import write_json
from dspo.core.cli import stage
from dspo.evaluation.toy2d import plot_toy

app = typer.Typer(add_completion=False)


@app.command()
@stage
def main(seed: int = typer.Option(0, help="seed"),
         out_dir: Path = typer.Option(Path("reports/toy2d"), help="folder for toy2d.png and toy2d.json")) -> None:
    results = plot_toy(out_dir / "toy2d.png", seed=seed)
    write_json({r["variant"]: r for r in results}, out_dir / "toy2d.json")
    for r in results:
        typer.echo(f"{r['variant']:>28}: recall of safe unlabeled {r['recall_safe']:.2f}, "
                   f"mis-ranked (unsafe high-return > safe lower-return) pairs {r['pair_misrank']:.2f}")


if __name__ == "__main__":
    app()

"""Stage analysis_oracle_labels: the per-episode condition table with z = the TRUE safety label.

Upper-bound analysis only (SPEC: separates discriminator error from generation error): the same
diffusion -> generate -> BC chain run on these labels shows what DSPO would reach with a perfect
discriminator. Its outputs never feed a DSPO stage (tests/test_dag.py).
"""
import numpy as np
import typer

from dspo.core.cli import stage, task_dirs
from dspo.core.errors import DataError
from dspo.data.schemas import LABELED, ORACLE, read_dataset, read_frame, write_table

app = typer.Typer(add_completion=False)


@app.command()
@stage
def main(task: str = typer.Option(..., help="task name from the registry")) -> None:
    dirs = task_dirs(task)
    data = read_dataset(dirs["data"] / "dataset.parquet", task=task)
    oracle = read_frame(ORACLE, dirs["data"] / "oracle.parquet").groupby("episode_id")["is_safe"].first()
    ids, first = np.unique(data.episode_id, return_index=True)
    returns = data.episode_returns().reindex(ids).to_numpy()
    z = oracle.reindex(ids).astype(float).to_numpy()
    if np.isnan(z).any():
        raise DataError("oracle.parquet lacks some dataset episodes (rerun collect)")
    write_table(LABELED, {"episode_id": ids, "split": data.split[first], "return": returns, "z": z},
                dirs["data"] / "analysis_oracle_labeled.parquet", task=task)
    typer.echo(f"{int(z.sum())} of {len(z)} episodes truly safe -> {dirs['data'] / 'analysis_oracle_labeled.parquet'}")


if __name__ == "__main__":
    app()

"""Training curves: a CSV that dvc.yaml declares as a DVC plot, and a PNG a reader can glance at."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from dspo.artifacts import atomic_path, save_figure


def write_curve(frame: pd.DataFrame, csv_path: Path, png_path: Path | None = None, title: str = "",
                x: str = "step", logy: bool = False) -> None:
    with atomic_path(csv_path) as tmp:
        frame.to_csv(tmp, index=False)
    if png_path is None:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = [c for c in frame.columns if c != x]
    fig, axes = plt.subplots(1, len(columns), figsize=(4.5 * len(columns), 3.5), squeeze=False)
    for ax, col in zip(axes[0], columns):
        ax.plot(frame[x], frame[col])
        ax.set_xlabel(x)
        ax.set_ylabel(col)
        if logy:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    save_figure(fig, png_path)

"""Training curves as CSV files that dvc.yaml declares as DVC plots (`dvc plots show` renders them)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from dspo.artifacts import atomic_path


def write_curve(frame: pd.DataFrame, csv_path: Path) -> None:
    with atomic_path(csv_path) as tmp:
        frame.to_csv(tmp, index=False)

"""Reading the prepared train/test CSV files into arrays (numpy only, so evaluate and compare skip torch)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adaline_repro.files import read_csv

LABEL = "label"
ROW = "row"


@dataclass(frozen=True)
class Table:
    features: tuple[str, ...]
    x: np.ndarray  # (n, n_features) float32, standardized
    y: np.ndarray  # (n,) int64 class labels 0/1
    rows: np.ndarray  # (n,) int64 row of the raw table


def read_table(path: Path | str) -> Table:
    header, rows = read_csv(path)
    n_features = header.index(LABEL)
    data = np.array(rows, dtype=object)
    return Table(
        features=tuple(header[:n_features]),
        x=data[:, :n_features].astype(np.float32).reshape(len(rows), n_features),
        y=data[:, n_features].astype(np.int64),
        rows=data[:, header.index(ROW)].astype(np.int64),
    )

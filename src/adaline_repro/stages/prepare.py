"""Prepare stage: two classes, two features, the lecture's 70/30 split, standardized with training statistics.

As the lecture does it: pandas reads the raw table, torch draws the split (`torch.randperm` from the seed)
and computes the mean and standard deviation of the training rows.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from adaline_repro.core.errors import EXIT_OK, InputError
from adaline_repro.core.files import DataError, exact_float, float_text, write_csv, write_json
from adaline_repro.core.params import PrepareParams, load_section
from adaline_repro.core.results import LABEL, ROW
from adaline_repro.stages import parser, run_stage, say


class PrepareError(InputError):
    """The raw table does not allow the selection asked for in params.yaml."""


@dataclass(frozen=True)
class Split:
    """One side of the split: standardized features, labels and the raw-table row each came from."""

    x: torch.Tensor  # (n, 2) float32
    y: torch.Tensor  # (n,) int64
    rows: torch.Tensor  # (n,) int64


@dataclass(frozen=True)
class Prepared:
    train: Split
    test: Split
    mean: torch.Tensor  # (2,) float32
    std: torch.Tensor  # (2,) float32


def select(raw: pd.DataFrame, params: PrepareParams) -> Split:
    """Rows of the two classes in dataset order; label = position of the species in params.classes."""
    missing = [c for c in (*params.features, "species") if c not in raw.columns]
    if missing:
        raise PrepareError(f"raw table lacks a column: {missing[0]!r}")
    kept = raw[raw["species"].isin(params.classes)]
    for name in params.classes:
        if not (kept["species"] == name).any():
            raise PrepareError(f"raw table has no row of class {name!r}")
    return Split(
        x=torch.tensor(kept[list(params.features)].to_numpy(), dtype=torch.float32),
        y=torch.tensor(kept["species"].map(params.classes.index).to_numpy(), dtype=torch.int64),
        rows=torch.tensor(kept.index.to_numpy(), dtype=torch.int64),
    )


def split_and_standardize(data: Split, params: PrepareParams) -> Prepared:
    """The lecture's split, quirk included: permute by p, then index the permuted data by p again."""
    n = len(data.y)
    n_test = round(n * params.test_fraction)
    n_train = n - n_test
    if n_train < 2 or n_test < 1:
        raise PrepareError(f"{n} rows leave {n_train} for training and {n_test} for testing")
    p = torch.randperm(n, generator=torch.Generator().manual_seed(params.seed))
    x, y, rows = data.x[p], data.y[p], data.rows[p]
    train_idx, test_idx = p[:n_train], p[n_train:]
    x_train, x_test = x[train_idx], x[test_idx]
    mean, std = x_train.mean(dim=0), x_train.std(dim=0)  # (2,), unbiased std as the lecture's torch.std
    if bool((std == 0).any()):
        raise PrepareError("a feature is constant on the training rows; cannot standardize")
    return Prepared(
        train=Split((x_train - mean) / std, y[train_idx], rows[train_idx]),
        test=Split((x_test - mean) / std, y[test_idx], rows[test_idx]),
        mean=mean,
        std=std,
    )


def write_split(path: Path | str, split: Split, features: tuple[str, ...]) -> None:
    rows = (
        [*(float_text(v) for v in x), int(label), int(row)]
        for x, label, row in zip(split.x.numpy(), split.y.tolist(), split.rows.tolist(), strict=True)
    )
    write_csv(path, (*features, LABEL, ROW), rows)


def read_raw(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except (OSError, ValueError) as exc:  # pandas' ParserError and EmptyDataError are ValueErrors
        raise DataError(f"{path}: cannot read the raw table ({exc})") from None


def write_outputs(raw_csv: Path, train_csv: Path, test_csv: Path, scaler_json: Path, params: PrepareParams) -> Prepared:
    """Split and standardize the raw table; write both sides and the scaler."""
    prepared = split_and_standardize(select(read_raw(raw_csv), params), params)
    write_split(train_csv, prepared.train, params.features)
    write_split(test_csv, prepared.test, params.features)
    write_json(
        scaler_json,
        {
            "features": list(params.features),
            "mean": [exact_float(v) for v in prepared.mean.tolist()],
            "std": [exact_float(v) for v in prepared.std.tolist()],
            "n_train": len(prepared.train.y),
            "n_test": len(prepared.test.y),
        },
    )
    return prepared


def stage(params_yaml: Path, raw: Path, train: Path, test: Path, scaler: Path, say: Callable[[str], None]) -> int:
    """The prepare stage: select two classes and two features, split, standardize."""
    prepared = write_outputs(raw, train, test, scaler, load_section(params_yaml, PrepareParams))
    say(f"prepare: {len(prepared.train.y)} training rows, {len(prepared.test.y)} test rows")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = parser("prepare", "Two classes, two features, the lecture's split, standardized.", "raw", "train", "test",
                  "scaler").parse_args(argv)  # fmt: skip
    return stage(args.params, args.raw, args.train, args.test, args.scaler, say)


if __name__ == "__main__":
    sys.exit(run_stage(main))

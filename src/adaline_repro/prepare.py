"""Prepare stage: two classes, two features, the lecture's 70/30 split, standardized with training statistics."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from adaline_repro.dataset import LABEL, ROW
from adaline_repro.files import exact_float, float_text, read_csv, write_csv, write_json
from adaline_repro.params import PrepareParams


class PrepareError(RuntimeError):
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
    mean: torch.Tensor  # (2,)
    std: torch.Tensor  # (2,)


def select(header: list[str], rows: list[list[str]], params: PrepareParams) -> Split:
    """Rows of the two classes in dataset order; label = position of the species in params.classes."""
    try:
        cols = [header.index(name) for name in params.features]
        species_col = header.index("species")
    except ValueError as exc:
        raise PrepareError(f"raw table lacks a column: {exc}") from None
    keep = [(i, r) for i, r in enumerate(rows) if r[species_col] in params.classes]
    labels = [params.classes.index(r[species_col]) for _, r in keep]
    for cls_index, name in enumerate(params.classes):
        if cls_index not in labels:
            raise PrepareError(f"raw table has no row of class {name!r}")
    x = torch.tensor([[float(r[c]) for c in cols] for _, r in keep], dtype=torch.float32)
    return Split(
        x=x,
        y=torch.tensor(labels, dtype=torch.int64),
        rows=torch.tensor([i for i, _ in keep], dtype=torch.int64),
    )


def split_and_standardize(data: Split, params: PrepareParams) -> Prepared:
    """The lecture's split, quirk included: permute by p, then index the permuted data by p again."""
    n = data.y.numel()
    n_test = round(n * params.test_fraction)
    n_train = n - n_test
    if n_train < 2 or n_test < 1:
        raise PrepareError(f"{n} rows leave {n_train} for training and {n_test} for testing")
    generator = torch.Generator().manual_seed(params.seed)
    p = torch.randperm(n, generator=generator)
    x, y, rows = data.x[p], data.y[p], data.rows[p]
    train_idx, test_idx = p[:n_train], p[n_train:]
    x_train, x_test = x[train_idx], x[test_idx]
    mean, std = x_train.mean(dim=0), x_train.std(dim=0)  # unbiased, as torch defaults
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
        for x, label, row in zip(split.x.tolist(), split.y.tolist(), split.rows.tolist(), strict=True)
    )
    write_csv(path, (*features, LABEL, ROW), rows)


def run(raw_csv: Path, train_csv: Path, test_csv: Path, scaler_json: Path, params: PrepareParams) -> Prepared:
    header, rows = read_csv(raw_csv)
    prepared = split_and_standardize(select(header, rows, params), params)
    write_split(train_csv, prepared.train, params.features)
    write_split(test_csv, prepared.test, params.features)
    write_json(
        scaler_json,
        {
            "features": list(params.features),
            "mean": [exact_float(v) for v in prepared.mean.tolist()],
            "std": [exact_float(v) for v in prepared.std.tolist()],
            "n_train": prepared.train.y.numel(),
            "n_test": prepared.test.y.numel(),
        },
    )
    return prepared

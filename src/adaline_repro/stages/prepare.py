"""Prepare stage: two classes, two features, the lecture's 70/30 split, standardized with training statistics.

The lecture does this with torch; this stage reproduces its every bit with numpy alone, so it starts in a
fraction of a second instead of paying torch's import (about 3 s). `tests/test_prepare.py` holds the
replicas below to torch's own results over thousands of random inputs, so a torch that changes them fails
the tests rather than drifting quietly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adaline_repro.dataset import LABEL, ROW
from adaline_repro.errors import EXIT_OK, InputError
from adaline_repro.files import exact_float, float_text, read_csv, write_csv, write_json
from adaline_repro.params import PrepareParams, load_section


class PrepareError(InputError):
    """The raw table does not allow the selection asked for in params.yaml."""


@dataclass(frozen=True)
class Split:
    """One side of the split: standardized features, labels and the raw-table row each came from."""

    x: np.ndarray  # (n, 2) float32
    y: np.ndarray  # (n,) int64
    rows: np.ndarray  # (n,) int64


@dataclass(frozen=True)
class Prepared:
    train: Split
    test: Split
    mean: np.ndarray  # (2,) float32
    std: np.ndarray  # (2,) float32


# --- torch's CPU algorithms, replicated ----------------------------------------------------------


def torch_randperm(n: int, seed: int) -> np.ndarray:
    """`torch.randperm(n, generator=torch.Generator().manual_seed(seed))` on the CPU.

    torch seeds a 32-bit Mersenne Twister with the seed's low 32 bits (numpy's RandomState is the same
    generator) and shuffles Fisher-Yates style, swapping position i with i + random32() % (n - i).
    """
    draws = np.random.RandomState(seed & 0xFFFFFFFF).randint(0, 2**32, size=max(n - 1, 0), dtype=np.uint64)
    perm = np.arange(n, dtype=np.int64)
    for i in range(n - 1):
        j = i + int(draws[i] % (n - i))
        perm[i], perm[j] = perm[j], perm[i]
    return perm


def _multi_row_sum(columns: list[np.ndarray], size: int) -> list[np.float32]:
    """ATen's cascade sum (SumKernel.cpp, multi_row_sum): float32 partial sums in up to four levels."""
    num_levels = 4
    level_power = max(4, max(size - 1, 0).bit_length() // num_levels)  # CeilLog2(size) / num_levels
    level_step = 1 << level_power
    level_mask = level_step - 1
    acc = [[np.float32(0)] * len(columns) for _ in range(num_levels)]
    i = 0
    while i + level_step <= size:
        for _ in range(level_step):
            for k, column in enumerate(columns):
                acc[0][k] = np.float32(acc[0][k] + column[i])
            i += 1
        for level in range(1, num_levels):
            for k in range(len(columns)):
                acc[level][k] = np.float32(acc[level][k] + acc[level - 1][k])
                acc[level - 1][k] = np.float32(0)
            if i & (level_mask << (level * level_power)):
                break
    for tail in range(i, size):
        for k, column in enumerate(columns):
            acc[0][k] = np.float32(acc[0][k] + column[tail])
    for level in range(1, num_levels):
        for k in range(len(columns)):
            acc[0][k] = np.float32(acc[0][k] + acc[level][k])
    return acc[0]


def _torch_column_sum(column: np.ndarray) -> np.float32:
    """ATen's row_sum: four interleaved cascade sums (instruction-level parallelism), then the tail."""
    ilp = 4
    size_ilp = len(column) // ilp
    partial = _multi_row_sum([column[k::ilp] for k in range(ilp)], size_ilp)
    for i in range(size_ilp * ilp, len(column)):
        partial[0] = np.float32(partial[0] + column[i])
    for k in range(1, ilp):
        partial[0] = np.float32(partial[0] + partial[k])
    return partial[0]


def torch_mean(x: np.ndarray) -> np.ndarray:
    """`x.mean(dim=0)` of a float32 (n, f) tensor on the CPU: the cascade sum, then one float32 division."""
    sums = np.array([_torch_column_sum(x[:, j]) for j in range(x.shape[1])], dtype=np.float32)
    return sums / np.float32(len(x))


def torch_std(x: np.ndarray) -> np.ndarray:
    """`x.std(dim=0)` of a float32 tensor on the CPU: unbiased, accumulated in float64, rounded once."""
    return x.astype(np.float64).std(axis=0, ddof=1).astype(np.float32)


# --- the stage -------------------------------------------------------------------------------------


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
    return Split(
        x=np.array([[float(r[c]) for c in cols] for _, r in keep], dtype=np.float32).reshape(len(keep), len(cols)),
        y=np.array(labels, dtype=np.int64),
        rows=np.array([i for i, _ in keep], dtype=np.int64),
    )


def split_and_standardize(data: Split, params: PrepareParams) -> Prepared:
    """The lecture's split, quirk included: permute by p, then index the permuted data by p again."""
    n = len(data.y)
    n_test = round(n * params.test_fraction)
    n_train = n - n_test
    if n_train < 2 or n_test < 1:
        raise PrepareError(f"{n} rows leave {n_train} for training and {n_test} for testing")
    p = torch_randperm(n, params.seed)
    x, y, rows = data.x[p], data.y[p], data.rows[p]
    train_idx, test_idx = p[:n_train], p[n_train:]
    x_train, x_test = x[train_idx], x[test_idx]
    mean, std = torch_mean(x_train), torch_std(x_train)
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
            "n_train": len(prepared.train.y),
            "n_test": len(prepared.test.y),
        },
    )
    return prepared


def stage(params_yaml: Path, raw: Path, train: Path, test: Path, scaler: Path, say: Callable[[str], None]) -> int:
    """The prepare stage: select two classes and two features, split, standardize."""
    prepared = run(raw, train, test, scaler, load_section(params_yaml, PrepareParams))
    say(f"prepare: {len(prepared.train.y)} training rows, {len(prepared.test.y)} test rows")
    return EXIT_OK

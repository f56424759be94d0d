"""Prepare: the lecture's split, reproduced exactly, and standardization with training statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from adaline_repro.files import read_csv, read_json
from adaline_repro.stages.prepare import (
    PrepareError,
    select,
    split_and_standardize,
    torch_mean,
    torch_randperm,
    torch_std,
)


def _lecture_split(raw_csv):
    """The notebook's own code path, written independently with the global RNG."""
    _header, rows = read_csv(raw_csv)
    rows = rows[50:150]  # versicolor then virginica
    x = torch.tensor([[float(r[1]), float(r[2])] for r in rows], dtype=torch.float)
    y = torch.tensor([0 if r[4] == "versicolor" else 1 for r in rows])
    torch.manual_seed(123)
    shuffle_idx = torch.randperm(y.size(0), dtype=torch.long)
    x, y = x[shuffle_idx], y[shuffle_idx]
    percent70 = int(shuffle_idx.size(0) * 0.7)
    x_train, x_test = x[shuffle_idx[:percent70]], x[shuffle_idx[percent70:]]
    y_train, y_test = y[shuffle_idx[:percent70]], y[shuffle_idx[percent70:]]
    mu, sigma = x_train.mean(dim=0), x_train.std(dim=0)
    return (x_train - mu) / sigma, (x_test - mu) / sigma, y_train, y_test


def test_default_split_is_the_lectures_bit_for_bit(data_dir, train_table, test_table):
    """Same rows, same order, same float32 values as the notebook (double indexing by p included)."""
    x_train, x_test, y_train, y_test = _lecture_split(data_dir / "raw.csv")
    assert np.array_equal(train_table.x, x_train.numpy())
    assert np.array_equal(test_table.x, x_test.numpy())
    assert np.array_equal(train_table.y, y_train.numpy())
    assert np.array_equal(test_table.y, y_test.numpy())


def test_scaler_holds_training_statistics(data_dir, train_table):
    """After standardizing, training features have mean 0 and unbiased std 1."""
    scaler = read_json(data_dir / "scaler.json")
    assert (scaler["n_train"], scaler["n_test"]) == (70, 30)
    assert np.allclose(train_table.x.mean(axis=0), 0, atol=1e-6)
    assert np.allclose(train_table.x.std(axis=0, ddof=1), 1, atol=1e-6)


def test_rows_point_back_to_the_raw_table(data_dir, train_table, test_table):
    """Each prepared row names its raw row, and train and test share none."""
    assert set(train_table.rows).isdisjoint(test_table.rows)
    assert set(train_table.rows) | set(test_table.rows) == set(range(50, 150))


def test_a_class_absent_from_the_data_is_an_error(data_dir, params):
    header, rows = read_csv(data_dir / "raw.csv")
    only_versicolor = [r for r in rows if r[4] != "virginica"]
    with pytest.raises(PrepareError, match="no row of class 'virginica'"):
        select(header, only_versicolor, params.prepare)


def test_too_few_rows_for_a_split_is_an_error(data_dir, params):
    header, rows = read_csv(data_dir / "raw.csv")
    few = rows[50:51] + rows[100:101]
    with pytest.raises(PrepareError, match="leave 1 for training"):
        split_and_standardize(select(header, few, params.prepare), params.prepare)


@pytest.mark.parametrize("seed", [0, 1, 123, 2**31 - 1, 2**32 - 1, 2**32 + 5, 2**63 + 11])
@pytest.mark.parametrize("n", [1, 2, 3, 10, 70, 100, 150, 1000])
def test_randperm_replica_is_torchs_permutation(n, seed):
    """The numpy shuffle gives torch.randperm's permutation for the same seed, 64-bit seeds included."""
    expected = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
    assert np.array_equal(torch_randperm(n, seed), expected)


def test_mean_and_std_replicas_are_torchs_bit_for_bit():
    """Over 2,000 random float32 tables of 2 to 400 rows, mean and std equal torch's to the last bit."""
    rng = np.random.default_rng(0)
    for _ in range(2000):
        n = int(rng.integers(2, 400))
        x = (rng.normal(size=(n, 2)) * rng.uniform(0.01, 100) + rng.uniform(-50, 50)).astype(np.float32)
        t = torch.from_numpy(x)
        assert np.array_equal(torch_mean(x), t.mean(dim=0).numpy()), n
        assert np.array_equal(torch_std(x), t.std(dim=0).numpy()), n

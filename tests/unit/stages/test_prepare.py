"""Prepare: the lecture's split, reproduced exactly, and standardization with training statistics; the
files it writes are the bytes dvc.lock vouches for."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
import yaml

from adaline_repro.core.files import read_csv, read_json
from adaline_repro.stages.prepare import PrepareError, read_raw, select, split_and_standardize
from tests.conftest import PATHS, REPO


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


def test_the_prepared_files_are_the_bytes_dvc_lock_records(data_dir):
    """pandas reading the raw table and torch splitting it give, byte for byte, what the committed lock says."""
    lock = yaml.safe_load((REPO / "dvc.lock").read_text())["stages"]["prepare"]["outs"]
    recorded = {entry["path"]: entry["md5"] for entry in lock}
    made = {PATHS.train: "train.csv", PATHS.test: "test.csv", PATHS.scaler: "scaler.json"}
    found = {path: hashlib.md5((data_dir / name).read_bytes(), usedforsecurity=False) for path, name in made.items()}
    assert {path: digest.hexdigest() for path, digest in found.items()} == recorded


def test_a_class_absent_from_the_data_is_an_error(data_dir, params):
    raw = read_raw(data_dir / "raw.csv")
    with pytest.raises(PrepareError, match="no row of class 'virginica'"):
        select(raw[raw["species"] != "virginica"], params.prepare)


def test_a_missing_feature_column_is_an_error(data_dir, params):
    raw = read_raw(data_dir / "raw.csv")
    with pytest.raises(PrepareError, match="raw table lacks a column: 'petal_length'"):
        select(raw.drop(columns="petal_length"), params.prepare)


def test_too_few_rows_for_a_split_is_an_error(data_dir, params):
    raw = read_raw(data_dir / "raw.csv")
    with pytest.raises(PrepareError, match="leave 1 for training"):
        split_and_standardize(select(raw.iloc[[50, 100]], params.prepare), params.prepare)


def test_a_feature_constant_on_the_training_rows_cannot_be_standardized(data_dir, params):
    raw = read_raw(data_dir / "raw.csv").assign(petal_length=4.0)
    with pytest.raises(PrepareError, match="a feature is constant on the training rows"):
        split_and_standardize(select(raw, params.prepare), params.prepare)

"""Shared fixtures: the repository's own params and the lecture's prepared data, built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from adaline_repro import fetch, prepare
from adaline_repro.dataset import Table, read_table
from adaline_repro.params import Params, load_params

REPO = Path(__file__).resolve().parents[1]

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


@pytest.fixture(scope="session")
def params() -> Params:
    return load_params(REPO / "params.yaml")


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory, params: Params) -> Path:
    """raw.csv, train.csv, test.csv and scaler.json made by the real fetch and prepare code."""
    out = tmp_path_factory.mktemp("data")
    (out / "raw.csv").write_text(fetch.fetch(params.fetch), encoding="utf-8")
    prepare.run(out / "raw.csv", out / "train.csv", out / "test.csv", out / "scaler.json", params.prepare)
    return out


@pytest.fixture(scope="session")
def train_table(data_dir: Path) -> Table:
    return read_table(data_dir / "train.csv")


@pytest.fixture(scope="session")
def test_table(data_dir: Path) -> Table:
    return read_table(data_dir / "test.csv")

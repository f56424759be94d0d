"""A real SQLite store per test, and an execution to log into it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from adaline_repro.tracking import store as tracking
from adaline_repro.tracking.runs import BackendRun, Dataset, Execution


def execution(tmp_path: Path, artifact_missing: bool = False) -> Execution:
    data = tmp_path / "train.csv"
    data.write_text("a,b,label,row\n0.5,0.25,1,3\n")
    art = tmp_path / "curve.csv"
    art.write_text("epoch,train_mse\n1,0.5\n2,0.25\n")
    backends = [
        BackendRun(
            b,
            "cpu",
            [0.5, 0.25],
            {"train_accuracy": 0.9, "test_accuracy": 0.8, "train_mse": 0.25},
            {"curve.csv": tmp_path / "missing.csv" if (artifact_missing and b == "module") else art},
        )
        for b in ("manual", "autograd", "module")
    ]
    return Execution(
        experiment="exp",
        params={"train.lr": "0.01", "train.epochs": "2"},
        tags={"git.dirty": "false"},
        backends=backends,
        datasets=[Dataset("iris-train", data, "abc123", "training")],
        verdict={"compare_passed": 1.0},
        verdict_tags={"compare.verdict": "passed"},
        reports={"compare.json": "{}\n"},
        note="**Compare passed**",
    )


@pytest.fixture(scope="session")
def new_store(tmp_path_factory) -> Path:
    """A store just created (MLflow's migrations take seconds), copied for each test that needs a new one."""
    db = tmp_path_factory.mktemp("new-store") / "mlflow.db"
    tracking.init_store(f"sqlite:///{db}")
    return db


@pytest.fixture
def uri(tmp_path, monkeypatch, new_store):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    shutil.copy2(new_store, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracking.init_store(uri)
    return uri

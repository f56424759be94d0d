"""Shared fixtures: the repository's own params and the lecture's prepared data, built once per session."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

from adaline_repro import fetch, prepare
from adaline_repro.dataset import Table, read_table
from adaline_repro.params import Params, load_params
from adaline_repro.worktree import copy_worktree

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


# --- fresh clones of the project, for the end-to-end tests ---------------------------------


def run_cmd(args: list[str], cwd: Path, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command to completion; with check, a failure shows its whole output."""
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if check and done.returncode != 0:
        raise AssertionError(f"{args} exited {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done


@contextlib.contextmanager
def edited(path: Path, old: str, new: str) -> Iterator[None]:
    """The file with `old` replaced by `new` for the duration of the block."""
    original = path.read_text()
    assert old in original
    path.write_text(original.replace(old, new))
    try:
        yield
    finally:
        path.write_text(original)


def stored_runs(uri: str) -> list:
    """Every run in every experiment of the store, newest first."""
    client = mlflow.MlflowClient(uri)
    experiments = client.search_experiments()
    return client.search_runs([e.experiment_id for e in experiments]) if experiments else []


def make_clone(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """What a fresh clone has: the files git would hold, committed in a new repository; nothing else.

    Returns the clone's root and an environment whose MLFLOW_TRACKING_URI is a store of its own.
    """
    root = copy_worktree(REPO, tmp_path_factory.mktemp("clone"))
    store = tmp_path_factory.mktemp("store")
    env = {
        **os.environ,
        "ADALINE_VENV": str(REPO / ".venv"),  # reuse the environment instead of building a second one
        "MLFLOW_TRACKING_URI": f"sqlite:///{store}/mlflow.db",
        "DVC_NO_ANALYTICS": "1",
    }
    env.pop("DVC_ROOT", None)
    return root, env

"""Fixtures of the end-to-end tier shared by more than one file.

A fresh clone's first `./pipeline repro` (fetch, prepare, track: the models are committed) is made once per
test process (`first_repro`); a test that needs a clone that has run gets a private copy of it and of its
store (`ran_clone`), so no test depends on another's order and none pays for that first run again.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from adaline_repro.tracking.execution import uri_file
from tests.conftest import PATHS, make_clone, run_cmd
from tests.e2e import trials


@dataclass(frozen=True)
class FirstRepro:
    root: Path
    env: dict
    committed_lock: str  # dvc.lock as the clone got it
    done: subprocess.CompletedProcess  # what the first `./pipeline repro` printed


@pytest.fixture(scope="session")
def first_repro(tmp_path_factory) -> FirstRepro:
    """A fresh clone after its first `./pipeline repro`: read it, never change it."""
    root, env = make_clone(tmp_path_factory)
    committed_lock = (root / "dvc.lock").read_text()
    done = run_cmd(["./pipeline", "repro"], root, env)
    return FirstRepro(root, env, committed_lock, done)


def copy_of(first: FirstRepro, into: Path, root: Path | None = None) -> tuple[Path, dict]:
    """A copy of the first run's clone (at `root`, default `into`/clone) and of its store (in `into`), in the
    same state: (root, env). The store's experiment keeps its artifact location (absolute, beside the
    original store: MLflow cannot move it), so artifacts the copy logs land there; no test reads them back
    from the copy's side."""
    root, store = root or into / "clone", into / "store"
    shutil.copytree(first.root, root, symlinks=True)
    shutil.copytree(Path(first.env["MLFLOW_TRACKING_URI"].removeprefix("sqlite:///")).parent, store)
    uri = f"sqlite:///{store}/mlflow.db"
    uri_file(root / PATHS.marker).write_text(uri + "\n")  # the copied store holds what it vouches for
    return root, {**first.env, "MLFLOW_TRACKING_URI": uri}


@pytest.fixture
def ran_clone(first_repro, tmp_path) -> tuple[Path, dict]:
    """A private copy of the clone after its first run, and of its store: (root, env)."""
    return copy_of(first_repro, tmp_path)


@pytest.fixture(scope="session")
def reference_b(first_repro, tmp_path_factory) -> dict[str, str]:
    """The outputs of an undisturbed run with the shared-machine trials' second learning rate (once per
    test process)."""
    root, env = copy_of(first_repro, tmp_path_factory.mktemp("reference-b"))
    trials.set_lr(root, "B")
    run_cmd(["./pipeline", "repro"], root, env)
    return trials.results(root)

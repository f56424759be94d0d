"""The embedded store under a real SQLite lock held by another process: wait, or fail in one clear line."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

from adaline_repro.tracking import store as tracking
from adaline_repro.tracking.runs import log_execution
from adaline_repro.tracking.store import TrackingError
from tests.unit.tracking import conftest as unit

uri, new_store = unit.uri, unit.new_store  # the same fixtures: a fresh embedded store
_execution = unit.execution


@contextlib.contextmanager
def _locked(db: Path, seconds: float) -> Iterator[None]:
    """Another writer holding an exclusive lock on the SQLite file for `seconds` (from a thread)."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        conn.execute("BEGIN EXCLUSIVE")
        held.set()
        release.wait(seconds)
        conn.execute("COMMIT")
        conn.close()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert held.wait(10)
    try:
        yield
    finally:
        release.set()
        thread.join(30)


def test_a_writer_waits_for_another_instead_of_failing(tmp_path, uri):
    """Two queued experiments logging at once: the second waits (longer than SQLite's default 5 s)."""
    with _locked(tmp_path / "mlflow.db", seconds=7):
        started = time.monotonic()
        log_execution(uri, _execution(tmp_path))
        waited = time.monotonic() - started
    assert waited >= 6
    runs = mlflow.MlflowClient(uri).search_runs([mlflow.MlflowClient(uri).get_experiment_by_name("exp").experiment_id])
    assert sorted(r.info.status for r in runs) == ["FINISHED"] * 4


def test_a_store_locked_too_long_is_one_clear_line(tmp_path, uri):
    """Past MLflow's 20 s wait: one line naming the store, and no run left RUNNING."""
    lock = _locked(tmp_path / "mlflow.db", seconds=tracking.SQLITE_BUSY_TIMEOUT_S + 5)
    with lock, pytest.raises(TrackingError) as raised:
        log_execution(uri, _execution(tmp_path))
    assert str(raised.value) == (
        f"tracking store {uri} stayed locked by another process for 20 s; run again once it has finished"
    )
    client = mlflow.MlflowClient(uri)
    experiments = client.search_experiments()
    runs = client.search_runs([e.experiment_id for e in experiments]) if experiments else []
    assert "RUNNING" not in {r.info.status for r in runs}

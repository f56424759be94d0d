"""The store: the latest execution found, experiments keeping artifacts beside the database, the runs a dead
process of this checkout left RUNNING marked KILLED (and no other), a new store created under its lock."""

from __future__ import annotations

import os

import mlflow

from adaline_repro.core import processes
from adaline_repro.core.checkout import checkout_id
from adaline_repro.core.processes import ProcessId
from adaline_repro.tracking import store as tracking
from adaline_repro.tracking.runs import log_execution
from tests.unit.tracking.conftest import execution as _execution


def test_latest_execution_is_the_newest_parent_with_its_backend_runs(tmp_path, uri):
    first = log_execution(uri, _execution(tmp_path))
    second = log_execution(uri, _execution(tmp_path))
    latest = tracking.latest_execution(uri, "exp")
    assert latest.parent_run_id == second != first
    children = mlflow.MlflowClient(uri).search_runs([latest.experiment_id], f"tags.mlflow.parentRunId = '{second}'")
    assert sorted(latest.child_run_ids) == sorted(r.info.run_id for r in children)
    assert tracking.latest_execution(uri, "no-such-experiment") is None


def test_embedded_experiments_keep_artifacts_beside_the_database(tmp_path, uri):
    log_execution(uri, _execution(tmp_path))
    experiment = mlflow.MlflowClient(uri).get_experiment_by_name("exp")
    assert experiment.artifact_location == (tmp_path / "mlartifacts").as_uri()
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def test_only_this_checkouts_runs_whose_process_is_gone_are_marked_killed(tmp_path, uri):
    """A kill -9 leaves runs RUNNING; the next run ends those of this checkout whose process is gone, and
    leaves a live process's run (a queued experiment logging now) and another checkout's run alone."""
    client = mlflow.MlflowClient(uri)
    experiment = client.create_experiment("exp")
    gone = str(ProcessId(os.getpid(), processes.current().started - 100))  # the PID now runs another process
    cases = {
        "killed": {tracking.CHECKOUT_TAG: checkout_id(), tracking.PROCESS_TAG: gone},
        "live": {tracking.CHECKOUT_TAG: checkout_id(), tracking.PROCESS_TAG: str(processes.current())},
        "other checkout": {tracking.CHECKOUT_TAG: "elsewhere:/srv/adaline", tracking.PROCESS_TAG: gone},
        "untagged": {},
    }
    ids = {name: client.create_run(experiment, tags=tags, run_name=name).info.run_id for name, tags in cases.items()}
    finished = client.create_run(experiment, tags=cases["killed"]).info.run_id
    client.set_terminated(finished, "FINISHED")

    assert tracking.end_orphaned_runs(uri) == 1
    status = {name: client.get_run(run_id).info.status for name, run_id in ids.items()}
    assert status == {"killed": "KILLED", "live": "RUNNING", "other checkout": "RUNNING", "untagged": "RUNNING"}
    assert client.get_run(finished).info.status == "FINISHED"
    assert tracking.end_orphaned_runs(uri) == 0


def test_looking_for_orphaned_runs_in_a_new_embedded_store_creates_it_under_its_lock(tmp_path):
    """Queued experiments start at once; the first to look at a new store must not race the others to
    create its tables (two creators corrupt a SQLite store)."""
    db = tmp_path / "new" / "mlflow.db"
    assert tracking.end_orphaned_runs(f"sqlite:///{db}") == 0
    assert db.exists()
    assert db.with_name("mlflow.db.lock").exists()

"""The MLflow store: opening it (its tables created once, under a lock), its experiments, the failures that
become one line, finding what it holds (an execution by its id, the latest one), and the runs a dead process
of this checkout left RUNNING (a SIGKILL ends no run), marked KILLED. Writing an execution's runs is
runs.py's; a sweep's, sweep_runs.py's."""

from __future__ import annotations

import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mlflow
import requests
import sqlalchemy.exc
from filelock import FileLock, Timeout
from mlflow.entities import RunStatus

from adaline_repro.core import processes
from adaline_repro.core.checkout import checkout_id, repository_root
from adaline_repro.core.errors import ReproError, StoreError
from adaline_repro.core.processes import ProcessId
from adaline_repro.core.tracking_uri import artifact_location, check_tracking_store, embedded_db, redacted, tracking_uri

_INIT_LOCK_TIMEOUT_S = 300  # creating the tables takes seconds; a stuck holder must not hang us forever
# How long a write to the embedded store waits for another writer (a parallel queued experiment, the UI)
# before it fails: MLflow sets `PRAGMA busy_timeout = 20000` on every session of a SQLite store.
SQLITE_BUSY_TIMEOUT_S = 20
ROLE_TAG = "adaline.role"  # "execution" on parent runs, which is how latest_execution finds them
# Who logged a run: the checkout (host and path) and the process (PID and start time). A run still RUNNING
# whose process is gone was left by a kill; end_orphaned_runs marks those of this checkout KILLED.
CHECKOUT_TAG = "adaline.checkout"
PROCESS_TAG = "adaline.process"
# What identifies an execution (tracking/marker.py, execution_id): a parent run with this tag, FINISHED,
# means the store already holds it, whichever checkout or branch logged it.
EXECUTION_TAG = "adaline.execution"


class TrackingError(StoreError):
    """The tracking store could not be reached or refused a write."""


# What a store that fails raises through MLflow's client: its own exception, the HTTP client's (a server),
# SQLAlchemy's (a database), or our lock around creating the embedded store. Anything else is a bug.
STORE_FAILURES = (
    mlflow.exceptions.MlflowException, requests.RequestException, sqlalchemy.exc.SQLAlchemyError, Timeout
)  # fmt: skip


def store_error(uri: str, exc: BaseException) -> TrackingError:
    """One line naming the store; a locked SQLite file says so plainly instead of quoting SQL."""
    if "database is locked" in str(exc):
        return TrackingError(
            f"tracking store {redacted(uri)} stayed locked by another process for {SQLITE_BUSY_TIMEOUT_S} s; "
            "run again once it has finished"
        )
    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return TrackingError(f"tracking store {redacted(uri)}: {first_line}")


def client(uri: str) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(tracking_uri=uri)


def init_store(uri: str) -> None:
    """Open the store, creating its tables if new. For the embedded store this holds a file lock: queued
    experiments start in parallel, and two processes creating one SQLite database's tables corrupt it."""
    db = embedded_db(uri)
    try:
        if db is None:
            client(uri).search_experiments(max_results=1)
            return
        db.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(db.with_name(db.name + ".lock"), timeout=_INIT_LOCK_TIMEOUT_S):
            client(uri).search_experiments(max_results=1)
    except STORE_FAILURES as exc:
        raise store_error(uri, exc) from None


# MLflow 3's UI opens an experiment on its GenAI overview unless told it is classic model training.
_EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}


def ensure_experiment(c: mlflow.MlflowClient, name: str, uri: str) -> str:
    """The experiment's id, created (with its artifact location and UI kind) if new."""
    embedded = embedded_db(uri) is not None
    experiment = c.get_experiment_by_name(name)
    if experiment is None:
        location = artifact_location(uri) if embedded else None
        try:
            return c.create_experiment(name, artifact_location=location, tags=_EXPERIMENT_TAGS)
        except mlflow.exceptions.MlflowException:
            # Another process created it between our look-up and our create.
            experiment = c.get_experiment_by_name(name)
    for key, value in _EXPERIMENT_TAGS.items():
        if experiment.tags.get(key) != value:
            c.set_experiment_tag(experiment.experiment_id, key, value)
    return experiment.experiment_id


def end_orphaned_runs(uri: str) -> int:
    """Mark KILLED every run of this checkout left RUNNING by a process that is gone; returns how many.

    Runs of other checkouts, of other machines, and of processes still running (a queued experiment
    logging right now) are left alone."""
    init_store(uri)  # queued experiments start at once: a new embedded store is created under its lock only
    c = client(uri)
    me = checkout_id()
    try:
        experiments = [e.experiment_id for e in c.search_experiments()]
        running = c.search_runs(experiments, "attributes.status = 'RUNNING'") if experiments else []
        ended = 0
        for run in running:
            if run.data.tags.get(CHECKOUT_TAG) != me:
                continue
            process = ProcessId.parse(run.data.tags.get(PROCESS_TAG, ""))
            if process is not None and not processes.alive(process):
                c.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.KILLED))
                ended += 1
        return ended
    except STORE_FAILURES as exc:
        raise store_error(uri, exc) from None


@dataclass(frozen=True)
class LatestExecution:
    experiment_id: str
    parent_run_id: str
    child_run_ids: list[str]  # in backend order of the run names


def _newest_parent(c: mlflow.MlflowClient, experiment: str, condition: str = "") -> tuple[str, str] | None:
    """(experiment id, run id) of the newest execution's parent run in `experiment` that also meets
    `condition` (an MLflow filter), or None."""
    found = c.get_experiment_by_name(experiment)
    if found is None:
        return None
    parents = c.search_runs(
        [found.experiment_id],
        " and ".join([f"tags.`{ROLE_TAG}` = 'execution'", *([condition] if condition else [])]),
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return (found.experiment_id, parents[0].info.run_id) if parents else None


def holds_execution(uri: str, experiment: str, execution_id: str) -> str | None:
    """The parent run id of a FINISHED execution with this id in the experiment, or None."""
    found = _newest_parent(
        client(uri), experiment, f"tags.`{EXECUTION_TAG}` = '{execution_id}' and attributes.status = 'FINISHED'"
    )
    return None if found is None else found[1]


def latest_execution(uri: str, experiment: str) -> LatestExecution | None:
    """The newest pipeline execution (parent run and its backend runs), or None if there is none yet."""
    c = client(uri)
    found = _newest_parent(c, experiment)
    if found is None:
        return None
    experiment_id, parent = found
    children = c.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{parent}'")
    ordered = sorted(children, key=lambda r: r.info.run_name)
    return LatestExecution(experiment_id, parent, [r.info.run_id for r in ordered])


def mark_killed(root: Path, say: Callable[[str], None]) -> None:
    """Mark KILLED the runs a dead process of this checkout left RUNNING (imports MLflow: seconds, paid only
    after a process died). A store that cannot be reached is said, not fatal: the track stage does the
    same whenever it logs."""
    uri = tracking_uri(repository_root(root))
    db = embedded_db(uri)
    if db is not None and not db.exists():
        return
    try:
        check_tracking_store(uri)
        ended = end_orphaned_runs(uri)
    except ReproError as exc:
        say(f"could not mark the MLflow runs of dead processes KILLED: {exc}")
        return
    if ended:
        say(f"marked {ended} MLflow run{'s' if ended != 1 else ''} KILLED that a dead process of this "
            "checkout had left RUNNING")  # fmt: skip

"""The only module that talks to MLflow: one parent run per pipeline execution, one child per backend."""

from __future__ import annotations

import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

import logging
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import requests
import sqlalchemy.exc
from filelock import FileLock, Timeout
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.meta_dataset import MetaDataset
from mlflow.entities import DatasetInput, InputTag, Metric, Param, RunStatus, RunTag

from adaline_repro import processes
from adaline_repro.errors import StoreError
from adaline_repro.processes import ProcessId
from adaline_repro.workspace import artifact_location, checkout_id, embedded_db, redacted

log = logging.getLogger(__name__)

_INIT_LOCK_TIMEOUT_S = 300  # creating the tables takes seconds; a stuck holder must not hang us forever
# How long a write to the embedded store waits for another writer (a parallel queued experiment, the UI)
# before it fails: MLflow sets `PRAGMA busy_timeout = 20000` on every session of a SQLite store.
SQLITE_BUSY_TIMEOUT_S = 20
ROLE_TAG = "adaline.role"  # "execution" on parent runs, which is how latest_execution finds them
# Who logged a run: the checkout (host and path) and the process (PID and start time). A run still RUNNING
# whose process is gone was left by a kill; end_orphaned_runs marks those of this checkout KILLED.
CHECKOUT_TAG = "adaline.checkout"
PROCESS_TAG = "adaline.process"
# What identifies an execution (tracking/execution.py, execution_id): a parent run with this tag, FINISHED,
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


@dataclass(frozen=True)
class Dataset:
    name: str
    path: Path
    digest: str
    context: str  # "training" or "evaluation"


@dataclass(frozen=True)
class BackendRun:
    backend: str
    device: str
    losses: list[float]  # train MSE for epochs 1..N
    metrics: dict[str, float]  # train_accuracy, test_accuracy, train_mse
    artifacts: dict[str, Path]  # artifact name (the same in every backend run, so the UI lines them up) -> file


@dataclass(frozen=True)
class Execution:
    """Everything one pipeline execution logs."""

    experiment: str
    params: dict[str, str]  # shared by every run; children add `backend`
    tags: dict[str, str]  # shared by every run
    backends: list[BackendRun]
    datasets: list[Dataset]
    verdict: dict[str, float]  # parent metrics: compare_passed, compare_max_abs_diff_<quantity>
    verdict_tags: dict[str, str]
    reports: dict[str, str] = field(default_factory=dict)  # artifact file name -> text, on the parent
    parent_artifacts: list[Path] = field(default_factory=list)
    parent_name: str = "pipeline"  # the runs table shows names first: track puts the verdict in it
    note: str = ""  # the parent run's description (markdown)


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


def _dataset_input(dataset: Dataset) -> DatasetInput:
    with warnings.catch_warnings():
        # A local path matches two equivalent local-artifact source types; MLflow warns and picks one.
        warnings.simplefilter("ignore", UserWarning)
        source = resolve_dataset_source(str(dataset.path))
    meta = MetaDataset(source=source, name=dataset.name, digest=dataset.digest)
    return DatasetInput(meta._to_mlflow_entity(), tags=[InputTag("mlflow.data.context", dataset.context)])


# MLflow creates a dataset row on first use by a look-up then an insert, not atomically: two executions that
# log the same data at once (queued experiments share the prepared data) race, and the loser's insert breaks
# the datasets table's unique key. Its transaction is rolled back whole, so logging again finds the row.
# SQLite names the key's columns; PostgreSQL (behind a server) the key, dataset_pk.
_DATASET_RACE = ("datasets.experiment_id, datasets.name, datasets.digest", '"dataset_pk"')
_DATASET_ATTEMPTS = 3


def log_inputs(c: mlflow.MlflowClient, run_id: str, inputs: list[DatasetInput]) -> None:
    """`log_inputs`, again when another process created one of the datasets between MLflow's look-up and
    its insert (a unique-key failure of the datasets table, through SQLAlchemy or a tracking server)."""
    for attempt in range(1, _DATASET_ATTEMPTS + 1):
        try:
            c.log_inputs(run_id, datasets=inputs)
            return
        except (sqlalchemy.exc.IntegrityError, mlflow.exceptions.MlflowException) as exc:
            if attempt == _DATASET_ATTEMPTS or not any(key in str(exc) for key in _DATASET_RACE):
                raise
            log.info("dataset created meanwhile by another process; logging the inputs of %s again", run_id)


def log_execution(uri: str, execution: Execution) -> str:
    """Log the parent and one child per backend; every run ends FINISHED, or FAILED/KILLED on error.

    Returns the parent run id.
    """
    init_store(uri)
    c = client(uri)
    running: list[str] = []  # runs created and not yet terminated
    owner = {CHECKOUT_TAG: checkout_id(), PROCESS_TAG: str(processes.current())}
    try:
        experiment_id = ensure_experiment(c, execution.experiment, uri)
        now = int(time.time() * 1000)
        note = {"mlflow.note.content": execution.note} if execution.note else {}
        parent = c.create_run(
            experiment_id,
            start_time=now,
            run_name=execution.parent_name,
            tags={**execution.tags, **owner, **note, ROLE_TAG: "execution"},
        )
        running.append(parent.info.run_id)
        c.log_batch(
            parent.info.run_id,
            metrics=[Metric(k, v, now, 0) for k, v in sorted(execution.verdict.items())],
            params=[
                Param(k, v)
                for k, v in sorted(
                    {**execution.params, "train.backends": ",".join(b.backend for b in execution.backends)}.items()
                )
            ],
            tags=[RunTag(k, v) for k, v in sorted(execution.verdict_tags.items())],
        )
        for name, text in sorted(execution.reports.items()):
            c.log_text(parent.info.run_id, text, name)
        for path in execution.parent_artifacts:
            c.log_artifact(parent.info.run_id, str(path))
        inputs = [_dataset_input(d) for d in execution.datasets]
        for backend in execution.backends:
            child = c.create_run(
                experiment_id,
                start_time=now,
                run_name=f"{backend.backend}@{backend.device}",
                tags={
                    **execution.tags,
                    **owner,
                    "mlflow.parentRunId": parent.info.run_id,
                    "backend": backend.backend,
                    "device": backend.device,
                },
            )
            running.append(child.info.run_id)
            metrics = [Metric("train_mse", v, now, epoch) for epoch, v in enumerate(backend.losses, start=1)]
            metrics += [Metric(k, v, now, 0) for k, v in sorted(backend.metrics.items()) if k != "train_mse"]
            params = {**execution.params, "backend": backend.backend}
            c.log_batch(child.info.run_id, metrics=metrics, params=[Param(k, v) for k, v in sorted(params.items())])
            log_inputs(c, child.info.run_id, inputs)
            for name, path in sorted(backend.artifacts.items()):
                c.log_text(child.info.run_id, path.read_text(encoding="utf-8"), name)
            c.set_terminated(child.info.run_id, RunStatus.to_string(RunStatus.FINISHED))
            running.remove(child.info.run_id)
        c.set_terminated(parent.info.run_id, RunStatus.to_string(RunStatus.FINISHED))
        running.remove(parent.info.run_id)
        return parent.info.run_id
    except BaseException as exc:
        status = RunStatus.KILLED if isinstance(exc, KeyboardInterrupt | SystemExit) else RunStatus.FAILED
        for run_id in reversed(running):
            try:
                c.set_terminated(run_id, RunStatus.to_string(status))
            except Exception:  # the store may be what failed; nothing more to do for this run
                log.warning("could not mark run %s as %s", run_id, RunStatus.to_string(status))
        if isinstance(exc, STORE_FAILURES):
            raise store_error(uri, exc) from exc
        raise


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

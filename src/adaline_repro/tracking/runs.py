"""One execution written to the store: a parent run with the verdict, and one child run per backend with its
loss curve, metrics, datasets and files. Each run takes one `log_batch` for its params and metrics (one
call per value is about 200 times slower), and every run ends FINISHED, or FAILED or KILLED on error."""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import sqlalchemy.exc
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.meta_dataset import MetaDataset
from mlflow.entities import Dataset as DatasetEntity
from mlflow.entities import DatasetInput, InputTag, Metric, Param, RunStatus, RunTag

from adaline_repro.core import processes
from adaline_repro.core.checkout import checkout_id
from adaline_repro.tracking.store import (
    CHECKOUT_TAG,
    PROCESS_TAG,
    ROLE_TAG,
    STORE_FAILURES,
    client,
    ensure_experiment,
    init_store,
    store_error,
)

log = logging.getLogger(__name__)


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


def log_execution(uri: str, execution: Execution) -> str:
    """Log the parent and one child per backend; returns the parent run id."""
    init_store(uri)
    c = client(uri)
    running: list[str] = []  # runs created and not yet terminated
    owner = {CHECKOUT_TAG: checkout_id(), PROCESS_TAG: str(processes.current())}
    try:
        experiment_id = ensure_experiment(c, execution.experiment, uri)
        now = int(time.time() * 1000)
        parent = _parent(c, experiment_id, execution, owner, now)
        running.append(parent)
        inputs = [_dataset_input(d) for d in execution.datasets]
        for backend in execution.backends:
            tags = {**execution.tags, **owner, "mlflow.parentRunId": parent}
            child = c.create_run(
                experiment_id,
                start_time=now,
                run_name=f"{backend.backend}@{backend.device}",
                tags={**tags, "backend": backend.backend, "device": backend.device},
            ).info.run_id
            running.append(child)
            _child(c, child, backend, execution.params, inputs, now)
            c.set_terminated(child, RunStatus.to_string(RunStatus.FINISHED))
            running.remove(child)
        c.set_terminated(parent, RunStatus.to_string(RunStatus.FINISHED))
        running.remove(parent)
        return parent
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


def _parent(c: mlflow.MlflowClient, experiment_id: str, execution: Execution, owner: dict, now: int) -> str:
    """The parent run: the verdict in its name, description, metrics and tags; every param; the reports."""
    note = {"mlflow.note.content": execution.note} if execution.note else {}
    run_id = c.create_run(
        experiment_id,
        start_time=now,
        run_name=execution.parent_name,
        tags={**execution.tags, **owner, **note, ROLE_TAG: "execution"},
    ).info.run_id
    params = {**execution.params, "train.backends": ",".join(b.backend for b in execution.backends)}
    c.log_batch(
        run_id,
        metrics=[Metric(k, v, now, 0) for k, v in sorted(execution.verdict.items())],
        params=[Param(k, v) for k, v in sorted(params.items())],
        tags=[RunTag(k, v) for k, v in sorted(execution.verdict_tags.items())],
    )
    for name, text in sorted(execution.reports.items()):
        c.log_text(run_id, text, name)
    for path in execution.parent_artifacts:
        c.log_artifact(run_id, str(path))
    return run_id


def _child(c: mlflow.MlflowClient, run_id: str, backend: BackendRun, params: dict[str, str],
           inputs: list[DatasetInput], now: int) -> None:  # fmt: skip
    """A backend's run: its loss curve (a step per epoch), metrics, params, datasets and files."""
    metrics = [Metric("train_mse", v, now, epoch) for epoch, v in enumerate(backend.losses, start=1)]
    metrics += [Metric(k, v, now, 0) for k, v in sorted(backend.metrics.items()) if k != "train_mse"]
    mine = {**params, "backend": backend.backend}
    c.log_batch(run_id, metrics=metrics, params=[Param(k, v) for k, v in sorted(mine.items())])
    log_inputs(c, run_id, inputs)
    for name, path in sorted(backend.artifacts.items()):
        c.log_text(run_id, path.read_text(encoding="utf-8"), name)


def _dataset_input(dataset: Dataset) -> DatasetInput:
    with warnings.catch_warnings():
        # A local path matches two equivalent local-artifact source types; MLflow warns and picks one.
        warnings.simplefilter("ignore", UserWarning)
        source = resolve_dataset_source(str(dataset.path))
    found = MetaDataset(source=source, name=dataset.name, digest=dataset.digest).to_dict()
    entity = DatasetEntity(found["name"], found["digest"], found["source_type"], found["source"])
    return DatasetInput(entity, tags=[InputTag("mlflow.data.context", dataset.context)])


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

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
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.meta_dataset import MetaDataset
from mlflow.entities import DatasetInput, InputTag, Metric, Param, RunStatus, RunTag

from adaline_repro.locations import artifact_location

log = logging.getLogger(__name__)


class TrackingError(RuntimeError):
    """The tracking store could not be reached or refused a write."""


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
    artifacts: list[Path]


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


def client(uri: str) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(tracking_uri=uri)


def init_store(uri: str) -> None:
    """Create the store's tables once, before any parallel use (SQLite's first use is not concurrent-safe)."""
    try:
        client(uri).search_experiments(max_results=1)
    except Exception as exc:  # mlflow raises many types; all mean the same to the user
        raise TrackingError(f"tracking store {uri}: {exc}") from None


def _experiment_id(c: mlflow.MlflowClient, name: str, embedded: bool) -> str:
    experiment = c.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = artifact_location() if embedded else None
    try:
        return c.create_experiment(name, artifact_location=location)
    except mlflow.exceptions.MlflowException:
        # Another process created it between our look-up and our create.
        return c.get_experiment_by_name(name).experiment_id


def _dataset_input(dataset: Dataset) -> DatasetInput:
    with warnings.catch_warnings():
        # A local path matches two equivalent local-artifact source types; MLflow warns and picks one.
        warnings.simplefilter("ignore", UserWarning)
        source = resolve_dataset_source(str(dataset.path))
    meta = MetaDataset(source=source, name=dataset.name, digest=dataset.digest)
    return DatasetInput(meta._to_mlflow_entity(), tags=[InputTag("mlflow.data.context", dataset.context)])


def log_execution(uri: str, execution: Execution) -> str:
    """Log the parent and one child per backend; every run ends FINISHED, or FAILED/KILLED on error.

    Returns the parent run id.
    """
    c = client(uri)
    running: list[str] = []  # runs created and not yet terminated
    try:
        experiment_id = _experiment_id(c, execution.experiment, uri.startswith("sqlite:"))
        now = int(time.time() * 1000)
        parent = c.create_run(experiment_id, start_time=now, run_name="pipeline", tags=execution.tags)
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
        inputs = [_dataset_input(d) for d in execution.datasets]
        for backend in execution.backends:
            child = c.create_run(
                experiment_id,
                start_time=now,
                run_name=f"{backend.backend}@{backend.device}",
                tags={
                    **execution.tags,
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
            c.log_inputs(child.info.run_id, datasets=inputs)
            for path in backend.artifacts:
                c.log_artifact(child.info.run_id, str(path))
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
        if isinstance(exc, Exception) and not isinstance(exc, TrackingError):
            raise TrackingError(f"tracking store {uri}: {exc}") from exc
        raise

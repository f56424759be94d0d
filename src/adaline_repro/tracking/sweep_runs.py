"""A sweep in MLflow: one parent run per sweep, with the results table (`log_table`), the agreement map and
the summary; one child run per trial with its swept values as params, its metrics and its verdict as tags,
written by a thread beside the trials (SweepWriter).

Logged to the store `./pipeline repro` uses, in the experiment `<tracking.experiment>-sweeps`, so the
pipeline's own executions stay on their own. Each child takes three writes (create, one `log_batch`,
end), never one per value. Idempotent by trial id: a resumed sweep finds its parent by the sweep's key
and logs only the trials it has no child for, so every trial is in MLflow exactly once.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from mlflow.entities import Metric, Param, RunStatus, RunTag

from adaline_repro.tracking.store import (
    ROLE_TAG,
    STORE_FAILURES,
    LatestExecution,
    client,
    ensure_experiment,
    init_store,
    store_error,
)

SWEEP_TAG = "adaline.sweep"  # the sweep's key, on the parent and every child
TRIAL_TAG = "adaline.trial"  # the trial's id, on its child
PARENT_TAG = "mlflow.parentRunId"
FINISHED = RunStatus.to_string(RunStatus.FINISHED)


def experiment_name(pipeline_experiment: str) -> str:
    return f"{pipeline_experiment}-sweeps"


class SweepLog:
    """The sweep's parent run, found or created when opened; children added one call per trial."""

    def __init__(self, uri: str, experiment: str, key: str) -> None:
        init_store(uri)
        self.uri, self.key = uri, key
        self._c = client(uri)
        with self._failures():
            self.experiment_id = ensure_experiment(self._c, experiment_name(experiment), uri)
            self.parent = _parent(self._c, self.experiment_id, key)
            self.logged = _children(self._c, self.experiment_id, self.parent)
        self.added = 0

    def trial(self, trial_id: str, params: dict[str, str], metrics: dict[str, float], tags: dict[str, str]) -> None:
        """One trial's child run, unless it has one: its swept values as params, its numbers as metrics."""
        if trial_id in self.logged:
            return
        now = int(time.time() * 1000)
        tags = {**tags, SWEEP_TAG: self.key, TRIAL_TAG: trial_id, PARENT_TAG: self.parent}
        with self._failures():
            child = self._c.create_run(self.experiment_id, start_time=now, run_name=trial_id, tags=tags)
            self._c.log_batch(
                child.info.run_id,
                metrics=[Metric(k, v, now, 0) for k, v in sorted(metrics.items())],
                params=[Param(k, v) for k, v in sorted(params.items())],
            )
            self._c.set_terminated(child.info.run_id, FINISHED)
        self.logged.add(trial_id)
        self.added += 1

    def finish(self, table: dict[str, list], summary: dict[str, float], artifacts: Sequence[Path]) -> None:
        """The parent's table (by column, for log_table), figure and files, summary metrics; ends it."""
        now = int(time.time() * 1000)
        with self._failures():
            self._c.log_table(self.parent, data=table, artifact_file="trials.json")
            for path in artifacts:
                self._c.log_artifact(self.parent, str(path))
            self._c.log_batch(
                self.parent,
                metrics=[Metric(k, float(v), now, 0) for k, v in sorted(summary.items()) if v is not None],
                tags=[RunTag("trials", str(len(table.get("trial", []))))],
            )
            self._c.set_terminated(self.parent, FINISHED)

    def interrupted(self) -> None:
        with self._failures():
            self._c.set_terminated(self.parent, RunStatus.to_string(RunStatus.KILLED))

    @contextlib.contextmanager
    def _failures(self) -> Iterator[None]:
        try:
            yield
        except STORE_FAILURES as exc:
            raise store_error(self.uri, exc) from exc


class SweepWriter:
    """A sweep's logging beside its trials: a thread adds each trial's child run as its record arrives, so the
    store's writes overlap the training instead of following it. Opened before the trials start, so a store
    that does not answer fails the sweep before minutes of work."""

    def __init__(self, uri: str, experiment: str, key: str) -> None:
        self.log = SweepLog(uri, experiment, key)
        self.busy = 0.0  # seconds spent writing to the store
        self._queue: queue.Queue = queue.Queue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="sweep-mlflow", daemon=True)
        self._thread.start()

    def put(self, trial_id: str, params: dict[str, str], metrics: dict[str, float], tags: dict[str, str]) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put((trial_id, params, metrics, tags))

    def _run(self) -> None:
        while (run := self._queue.get()) is not None:
            if self._error is None:
                started = time.monotonic()
                try:
                    self.log.trial(*run)
                except BaseException as exc:  # handed to the driver's thread, raised there
                    self._error = exc
                self.busy += time.monotonic() - started

    def finish(self, table: dict[str, list], summary: dict[str, float], artifacts: Sequence[Path]) -> float:
        """Wait for the children, then log the parent's table, files and summary; the seconds it took."""
        started = time.monotonic()
        self._drain()
        writing = time.monotonic()
        self.log.finish(table, summary, artifacts)
        self.busy += time.monotonic() - writing
        return time.monotonic() - started

    def _drain(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def interrupted(self) -> None:
        """Log what arrived, then mark the parent KILLED (a resumed sweep finishes it)."""
        self._drain()
        self.log.interrupted()

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()


def latest_sweep(uri: str, experiment: str) -> LatestExecution | None:
    """The newest sweep's parent run and its trials' runs (in trial-id order), or None if there is none."""
    c = client(uri)
    found = c.get_experiment_by_name(experiment_name(experiment))
    if found is None:
        return None
    parents = c.search_runs(
        [found.experiment_id], f"tags.`{ROLE_TAG}` = 'sweep'", order_by=["attributes.start_time DESC"], max_results=1
    )
    if not parents:
        return None
    parent = parents[0].info.run_id
    runs = _paged(c, found.experiment_id, f"tags.`{PARENT_TAG}` = '{parent}'")
    ordered = sorted(runs, key=lambda r: r.data.tags.get(TRIAL_TAG, ""))
    return LatestExecution(found.experiment_id, parent, [r.info.run_id for r in ordered])


def _paged(c, experiment_id: str, query: str) -> list:  # noqa: ANN001 (mlflow's client, imported by store)
    found: list = []
    token = None
    while True:
        page = c.search_runs([experiment_id], query, max_results=1000, page_token=token)
        found += list(page)
        token = page.token
        if not token:
            return found


def _parent(c, experiment_id: str, key: str) -> str:  # noqa: ANN001 (mlflow's client, imported by store)
    found = c.search_runs(
        [experiment_id], f"tags.`{SWEEP_TAG}` = '{key}' and tags.`{ROLE_TAG}` = 'sweep'", max_results=1
    )
    if found:
        return found[0].info.run_id
    return c.create_run(experiment_id, run_name=f"sweep {key}", tags={SWEEP_TAG: key, ROLE_TAG: "sweep"}).info.run_id


def _children(c, experiment_id: str, parent: str) -> set[str]:  # noqa: ANN001
    return {r.data.tags.get(TRIAL_TAG) for r in _paged(c, experiment_id, f"tags.`{PARENT_TAG}` = '{parent}'")}

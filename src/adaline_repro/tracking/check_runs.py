"""A check's verdict as one MLflow run: `./pipeline check --with` logs one to the usual store, tagged with
the package versions it ran, so the upgrades tried over time sit side by side in the UI. Its tags set when it
is created, its metrics in one `log_batch`; the run ends FINISHED, or FAILED when the store fails half way."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

from mlflow.entities import Metric, RunStatus

from adaline_repro.core import processes
from adaline_repro.core.checkout import checkout_id
from adaline_repro.tracking import store


@dataclass(frozen=True)
class CheckRun:
    name: str
    tags: dict[str, str]  # the versions (`version.torch`: "2.13.0+cpu -> 2.15.0"), the specs, the outcomes
    metrics: dict[str, float]
    reports: dict[str, str]  # artifact file name -> its text (check.md, check.json)


def experiment_name(pipeline_experiment: str) -> str:
    """The checks' own experiment, beside the pipeline's: a check's run has no backend children."""
    return f"{pipeline_experiment}-checks"


def log_check(uri: str, experiment: str, run: CheckRun) -> str:
    """Log the run; returns its id."""
    store.init_store(uri)
    c = store.client(uri)
    run_id = None
    try:
        experiment_id = store.ensure_experiment(c, experiment, uri)
        owner = {store.CHECKOUT_TAG: checkout_id(), store.PROCESS_TAG: str(processes.current())}
        owner[store.ROLE_TAG] = "check"
        run_id = c.create_run(experiment_id, run_name=run.name, tags={**run.tags, **owner}).info.run_id
        now = int(time.time() * 1000)
        c.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in sorted(run.metrics.items())])
        for name, text in sorted(run.reports.items()):
            c.log_text(run_id, text, name)
        c.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))
        return run_id
    except store.STORE_FAILURES as exc:
        if run_id is not None:
            with contextlib.suppress(*store.STORE_FAILURES):  # the store is what failed: the error below says so
                c.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))
        raise store.store_error(uri, exc) from None

"""`./pipeline ui`: the MLflow UI on the pipeline's store, with links to the latest execution."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from adaline_repro import mlflow_server
from adaline_repro.locations import redacted


@dataclass(frozen=True)
class Links:
    experiment: str
    compare: str | None  # None when the store has no execution yet
    curves: str | None


def links(base: str, experiment_id: str | None, run_ids: list[str]) -> Links:
    """The experiment's runs, the compare view of the given runs and their train_mse chart, as MLflow routes them."""
    base = base.rstrip("/")
    experiment = f"{base}/#/experiments/{experiment_id}/runs" if experiment_id else f"{base}/#/experiments"
    if not run_ids:
        return Links(experiment, None, None)
    runs = {"runs": json.dumps(run_ids, separators=(",", ":")), "experiments": json.dumps([experiment_id])}
    curves = {**runs, "metric": '"train_mse"', "plot_metric_keys": '["train_mse"]', "x_axis": "step"}
    return Links(
        experiment,
        f"{base}/#/compare-runs?{urllib.parse.urlencode(runs)}",
        f"{base}/#/metric?{urllib.parse.urlencode(curves)}",
    )


def serve(
    uri: str,
    host: str,
    port: int,
    log: Path,
    find_links: Callable[[str], Links],
    say: Callable[[str], None] = print,
) -> None:
    """Run the UI until interrupted; print the links once it answers."""
    mlflow_server.ensure_port_free(host, port)
    base = f"http://{host}:{port}"
    server = mlflow_server.start(uri, host, port, log)
    try:
        found = find_links(base)  # while the server starts
        took = mlflow_server.wait_until_up(base, server, log)
        say(
            f"MLflow UI on {base} (store {redacted(uri)}), ready after {took:.1f} s; Ctrl-C stops it. Server log: {log}"
        )
        say_links(found, say)
        server.wait()
        raise mlflow_server.ServerError(f"mlflow server exited with {server.returncode} (log: {log})")
    finally:
        mlflow_server.stop(server)


def say_links(found: Links, say: Callable[[str], None]) -> None:
    say(f"experiment:   {found.experiment}")
    say(f"compare view: {found.compare}" if found.compare else "compare view: no pipeline execution logged yet")
    if found.curves:
        say(f"loss curves:  {found.curves}")

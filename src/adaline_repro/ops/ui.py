"""`./pipeline ui`: the MLflow UI on the pipeline's store, with links to the latest execution."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from adaline_repro.ops import mlflow_process
from adaline_repro.workspace import redacted, repository_root, tracking_uri


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
    mlflow_process.ensure_port_free(host, port)
    base = f"http://{host}:{port}"
    server = mlflow_process.start(uri, host, port, log)
    try:
        found = find_links(base)  # while the server starts
        took = mlflow_process.wait_until_up(base, server, log)
        say(
            f"MLflow UI on {base} (store {redacted(uri)}), ready after {took:.1f} s; Ctrl-C stops it. Server log: {log}"
        )
        say_links(found, say)
        server.wait()
        raise mlflow_process.ServerError(f"mlflow server exited with {server.returncode} (log: {log})")
    finally:
        mlflow_process.stop(server)


def say_links(found: Links, say: Callable[[str], None]) -> None:
    say(f"experiment:   {found.experiment}")
    say(f"compare view: {found.compare}" if found.compare else "compare view: no pipeline execution logged yet")
    if found.curves:
        say(f"loss curves:  {found.curves}")


def command(params_yaml: Path, host: str, port: int, say: Callable[[str], None]) -> None:
    """`./pipeline ui`: serve the embedded store until Ctrl-C, or only print the links for a tracking server.
    The UI's log goes beside the track stage's marker (machine-local state, gitignored)."""
    from adaline_repro.params import load_params
    from adaline_repro.paths import pipeline_paths

    experiment = load_params(params_yaml).tracking.experiment
    uri = tracking_uri()

    def find_links(base: str) -> Links:
        from adaline_repro.tracking.store import latest_execution

        latest = latest_execution(uri, experiment)
        if latest is None:
            return links(base, None, [])
        return links(base, latest.experiment_id, latest.child_run_ids)

    if uri.startswith(("http://", "https://")):
        say(f"tracking server {redacted(uri)}: nothing to start")
        say_links(find_links(uri), say)
        return
    root = repository_root()
    log = (root / pipeline_paths(root).marker).parent / "mlflow-ui.log"
    try:
        serve(uri, host, port, log, find_links, say)
    except mlflow_process.ServerError as exc:
        raise mlflow_process.ServerError(f"ui: {exc}") from None
    except KeyboardInterrupt:
        say("\nui: stopped")

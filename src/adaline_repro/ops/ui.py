"""`./pipeline ui`: the MLflow UI on the pipeline's store, with links to the latest execution and the latest
sweep's trials."""

from __future__ import annotations

import dataclasses
import json
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from adaline_repro.core.checkout import repository_root
from adaline_repro.core.tracking_uri import redacted, tracking_uri
from adaline_repro.ops import mlflow_process


@dataclass(frozen=True)
class Links:
    experiment: str
    compare: str | None  # None when the store has no execution yet
    curves: str | None
    sweep: str | None = None  # the newest sweep's trials in the compare view (its parallel coordinates)


def links(base: str, experiment_id: str | None, run_ids: list[str]) -> Links:
    """The experiment's runs, the compare view of the given runs and their train_mse chart, as MLflow routes them."""
    base = base.rstrip("/")
    experiment = f"{base}/#/experiments/{experiment_id}/runs" if experiment_id else f"{base}/#/experiments"
    if not run_ids:
        return Links(experiment, None, None)
    runs = _runs(experiment_id, run_ids)
    curves = {**runs, "metric": '"train_mse"', "plot_metric_keys": '["train_mse"]', "x_axis": "step"}
    return Links(
        experiment, compare_link(base, experiment_id, run_ids), f"{base}/#/metric?{urllib.parse.urlencode(curves)}"
    )


def compare_link(base: str, experiment_id: str, run_ids: list[str]) -> str:
    """MLflow's compare view of the runs: their params and metrics side by side, a parallel-coordinates plot."""
    return f"{base.rstrip('/')}/#/compare-runs?{urllib.parse.urlencode(_runs(experiment_id, run_ids))}"


def _runs(experiment_id: str, run_ids: list[str]) -> dict[str, str]:
    return {"runs": json.dumps(run_ids, separators=(",", ":")), "experiments": json.dumps([experiment_id])}


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
    if found.sweep:
        say(f"sweep trials: {found.sweep}")


def command(params_yaml: Path, host: str, port: int, say: Callable[[str], None]) -> None:
    """`./pipeline ui`: serve the embedded store until Ctrl-C, or only print the links for a tracking server.
    The UI's log goes beside the track stage's marker (machine-local state, gitignored)."""
    from adaline_repro.core.checkout import pipeline_paths
    from adaline_repro.core.params import load_params

    experiment = load_params(params_yaml).tracking.experiment
    uri = tracking_uri()

    def find_links(base: str) -> Links:
        from adaline_repro.tracking.store import latest_execution
        from adaline_repro.tracking.sweep_runs import latest_sweep

        latest = latest_execution(uri, experiment)
        found = links(base, latest.experiment_id, latest.child_run_ids) if latest else links(base, None, [])
        sweep = latest_sweep(uri, experiment)
        if sweep is None or not sweep.child_run_ids:
            return found
        return dataclasses.replace(found, sweep=compare_link(base, sweep.experiment_id, sweep.child_run_ids))

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

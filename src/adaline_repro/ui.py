"""`./pipeline ui`: the MLflow UI on the pipeline's store, with links to the latest execution."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

_START_TIMEOUT_S = 180  # mlflow server takes ~30 s to answer on a 2-core machine
_STOP_TIMEOUT_S = 15


class UIError(RuntimeError):
    """The UI could not be started (port taken, server died or never answered)."""


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


def ensure_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            raise UIError(f"port {port} on {host} is already in use; choose another with --port") from None


def start_server(uri: str, host: str, port: int) -> subprocess.Popen:
    """`mlflow server` in a process group of its own, so stopping it stops its workers too."""
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", uri,
        "--host", host, "--port", str(port),
        "--workers", "1",
    ]  # fmt: skip
    return subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_until_up(base: str, server: subprocess.Popen, timeout_s: float = _START_TIMEOUT_S) -> float:
    """Poll the server's health endpoint; seconds it took. Fails fast if the server exits."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if server.poll() is not None:
            err = server.stderr.read().decode(errors="replace").strip().splitlines() if server.stderr else []
            raise UIError(f"mlflow server exited with {server.returncode}: {' | '.join(err[-3:])}")
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2) as response:  # noqa: S310 (our own loopback URL)
                if response.status == 200:
                    return time.monotonic() - start
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    raise UIError(f"mlflow server did not answer on {base} within {timeout_s:.0f} s")


def stop_server(server: subprocess.Popen) -> None:
    """SIGTERM to the whole group, then SIGKILL if it lingers."""
    if server.poll() is not None:
        return
    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=_STOP_TIMEOUT_S)
    except ProcessLookupError:
        pass


def serve(
    uri: str, host: str, port: int, find_links: Callable[[str], Links], say: Callable[[str], None] = print
) -> None:
    """Run the UI until interrupted; print the links once it answers."""
    ensure_port_free(host, port)
    base = f"http://{host}:{port}"
    server = start_server(uri, host, port)
    try:
        found = find_links(base)  # while the server starts
        took = wait_until_up(base, server)
        say(f"MLflow UI on {base} (store {uri}), ready after {took:.1f} s; Ctrl-C stops it.")
        say_links(found, say)
        server.wait()
        raise UIError(f"mlflow server exited with {server.returncode}")
    finally:
        stop_server(server)


def say_links(found: Links, say: Callable[[str], None]) -> None:
    say(f"experiment:   {found.experiment}")
    say(f"compare view: {found.compare}" if found.compare else "compare view: no pipeline execution logged yet")
    if found.curves:
        say(f"loss curves:  {found.curves}")

"""An `mlflow server` process: start it in a process group of its own, wait until it answers, stop it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from adaline_repro.core.errors import InputError

_START_TIMEOUT_S = 180  # mlflow server takes tens of seconds to answer on a loaded 2-core machine
_STOP_TIMEOUT_S = 15


class ServerError(InputError):
    """The server could not be started (port taken, server died or never answered)."""


def ensure_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            raise ServerError(f"port {port} on {host} is already in use; choose another with --port") from None


def start(
    backend_uri: str, host: str, port: int, log: Path, *, workers: int = 1, options: Sequence[str] = ()
) -> subprocess.Popen:
    """`mlflow server` in a process group of its own, so stopping it stops its workers too.

    The backend store URI travels in MLFLOW_BACKEND_STORE_URI, not argv: `ps` shows argv to every user, and a
    database URL carries a password. The server's output goes to `log` (a pipe nobody reads would fill up
    and block it).
    """
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--host", host, "--port", str(port), "--workers", str(workers), *options,
    ]  # fmt: skip
    # MLflow 3 also starts a job runner (seven huey worker processes, for GenAI evaluation jobs) when the
    # store is a database; nothing here submits jobs, and on two cores they compete with training.
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ, "MLFLOW_BACKEND_STORE_URI": backend_uri}
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(command, env=env, start_new_session=True, stdout=out, stderr=subprocess.STDOUT)


def _tail(log: Path, lines: int = 3) -> str:
    text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
    return " | ".join(text.strip().splitlines()[-lines:])


def wait_until_up(base: str, server: subprocess.Popen, log: Path, timeout_s: float = _START_TIMEOUT_S) -> float:
    """Poll the server's health endpoint; seconds it took. Fails fast if the server exits."""
    start_time = time.monotonic()
    while time.monotonic() - start_time < timeout_s:
        if server.poll() is not None:
            raise ServerError(f"mlflow server exited with {server.returncode}: {_tail(log)} (log: {log})")
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2) as response:  # noqa: S310 (our own URL)
                if response.status == 200:
                    return time.monotonic() - start_time
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    raise ServerError(f"mlflow server did not answer on {base} within {timeout_s:.0f} s (log: {log})")


def stop(server: subprocess.Popen) -> None:
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

"""Which tracking store this checkout logs to, and whether a store on the network answers.

MLFLOW_TRACKING_URI when set, else the embedded SQLite store at the repository root. A store on the network
must answer before anything runs: training takes minutes and a stage's outputs are deleted when it starts,
so finding out at the track stage that the server is down would waste both. Standard library only, so the
train stage, which checks the store first, pays nothing for it.
"""

from __future__ import annotations

import os
import socket
import urllib.parse
from pathlib import Path

from adaline_repro.core.checkout import repository_root
from adaline_repro.core.errors import StoreError

EMBEDDED_DB = "mlflow.db"
EMBEDDED_ARTIFACTS = "mlartifacts"
_TIMEOUT_S = 5.0


class StoreUnreachable(StoreError):
    """The tracking store named by the URI does not answer."""


def tracking_uri(root: Path | None = None) -> str:
    """MLFLOW_TRACKING_URI when set, else the embedded SQLite store at the repository root (absolute)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if uri:
        return uri
    return "sqlite:///" + str((root or repository_root()) / EMBEDDED_DB)


def redacted(uri: str) -> str:
    """The URI with any password replaced by ***, for messages and logs."""
    parts = urllib.parse.urlsplit(uri)
    if parts.password is None:
        return uri
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)))


def embedded_db(uri: str) -> Path | None:
    """The SQLite file behind an embedded-store URI, or None for any other store."""
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def artifact_location(uri: str) -> str:
    """Where experiments created in a SQLite store keep artifacts: beside the database, absolute."""
    db = embedded_db(uri)
    if db is None:
        raise ValueError(f"{uri} is not a SQLite store")
    return (db.parent / EMBEDDED_ARTIFACTS).as_uri()


def check_tracking_store(uri: str, timeout_s: float = _TIMEOUT_S) -> None:
    """Raise StoreUnreachable unless a network store answers within the timeout; local stores pass.

    An HTTP server counts as reachable whatever it answers (401 behind a proxy, 404 for another path):
    what matters here is that the connection works. A database URL is checked by opening a TCP connection.
    """
    parts = urllib.parse.urlsplit(uri)
    hint = "start it (./pipeline server) or unset MLFLOW_TRACKING_URI to log to the embedded store"
    if parts.scheme in ("http", "https"):
        # Imported here: urllib.request costs ~20 ms, which the embedded store never needs to pay.
        from urllib.error import HTTPError, URLError
        from urllib.request import urlopen

        try:
            with urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s):  # noqa: S310 (user's URI)
                return
        except HTTPError:
            return
        except (URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise StoreUnreachable(f"tracking store {redacted(uri)} is unreachable ({reason}); {hint}") from None
    elif parts.hostname and "://" in uri and not uri.startswith(("sqlite:", "file:")):
        default_ports = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}
        port = parts.port or default_ports.get(parts.scheme.split("+")[0])
        if port is None:
            return
        try:
            socket.create_connection((parts.hostname, port), timeout=timeout_s).close()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise StoreUnreachable(f"tracking store {redacted(uri)} is unreachable ({reason}); {hint}") from None

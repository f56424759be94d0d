"""Checks made before anything runs: a tracking store on the network must answer first.

Training takes minutes and a stage's outputs are deleted when it starts; finding out at the track stage
that the server is down would waste both. Only the standard library, so the train stage pays nothing.
"""

from __future__ import annotations

import socket
import urllib.parse

from adaline_repro.errors import StoreError
from adaline_repro.workspace import redacted

_TIMEOUT_S = 5.0


class StoreUnreachable(StoreError):
    """The tracking store named by the URI does not answer."""


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

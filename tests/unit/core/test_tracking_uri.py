"""Which store a checkout logs to (the embedded one at the repository root unless MLFLOW_TRACKING_URI says
otherwise), and the check before any work: a store on the network must answer; local stores always pass."""

from __future__ import annotations

import http.server
import threading

import pytest

from adaline_repro.core.tracking_uri import StoreUnreachable, check_tracking_store, embedded_db, tracking_uri
from tests.conftest import free_port

HINT = "start it (./pipeline server) or unset MLFLOW_TRACKING_URI to log to the embedded store"


@pytest.fixture
def http_server():
    """A real HTTP server on loopback that refuses everything with 401, like a server behind a login."""

    class Refuse(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(401)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_a_closed_port_is_one_line_naming_the_uri():
    uri = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(StoreUnreachable) as raised:
        check_tracking_store(uri)
    assert str(raised.value) == f"tracking store {uri} is unreachable ([Errno 111] Connection refused); {HINT}"


def test_any_http_answer_counts_as_reachable(http_server):
    check_tracking_store(http_server)


def test_a_database_url_is_probed_without_showing_its_password():
    port = free_port()
    with pytest.raises(StoreUnreachable) as raised:
        check_tracking_store(f"postgresql+psycopg://mlflow:s3cret@127.0.0.1:{port}/mlflow")
    assert str(raised.value) == (
        f"tracking store postgresql+psycopg://mlflow:***@127.0.0.1:{port}/mlflow is unreachable "
        f"(Connection refused); {HINT}"
    )


@pytest.mark.parametrize("uri", ["sqlite:////nowhere/mlflow.db", "file:///nowhere/mlruns", "databricks"])
def test_local_and_unknown_stores_pass(uri):
    check_tracking_store(uri)


def test_embedded_store_is_absolute_at_the_repository_root(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = tracking_uri(tmp_path)
    assert uri == f"sqlite:///{tmp_path}/mlflow.db"
    assert embedded_db(uri) == tmp_path / "mlflow.db"


def test_environment_tracking_uri_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking_uri(tmp_path) == "http://127.0.0.1:5000"
    assert embedded_db("http://127.0.0.1:5000") is None

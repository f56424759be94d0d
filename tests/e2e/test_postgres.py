"""The throw-away PostgreSQL behind ./pipeline server: a real cluster, loopback only, never run as root,
a password for every client, MLflow's role without superuser rights, and stopped when asked."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from adaline_repro.ops import postgres
from tests.conftest import port_open


@pytest.fixture
def folder() -> Iterator[Path]:
    """A folder PostgreSQL's own user can reach (pytest's tmp_path is closed to other users when root)."""
    parent = Path(tempfile.mkdtemp(prefix="adaline-pg-test-"))
    parent.chmod(0o755)
    yield parent / "cluster"
    shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture
def cluster(folder: Path) -> Iterator[postgres.Cluster]:
    started = postgres.start(folder)
    yield started
    postgres.stop(started)


def _superuser(cluster: postgres.Cluster) -> psycopg.Connection:
    return psycopg.connect(postgres.libpq_url(cluster.url(postgres.SUPERUSER, "postgres")), autocommit=True)


def test_cluster_listens_on_loopback_only_with_passwords(cluster):
    with _superuser(cluster) as conn:
        assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
        assert conn.execute("SHOW unix_socket_directories").fetchone() == ("",)
        assert conn.execute("SHOW password_encryption").fetchone() == ("scram-sha-256",)
        hba = {row[0] for row in conn.execute("SELECT auth_method FROM pg_hba_file_rules")}
    assert hba == {"scram-sha-256"}
    wrong = f"postgresql://{postgres.ROLE}:wrong@127.0.0.1:{cluster.port}/{postgres.DATABASE}"
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong, connect_timeout=5)


def test_mlflow_role_owns_its_database_without_superuser_rights(cluster):
    with psycopg.connect(postgres.libpq_url(cluster.url()), autocommit=True) as conn:
        user, superuser, database = conn.execute(
            "SELECT current_user, rolsuper, current_database() FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        conn.execute("CREATE TABLE probe (x int)")  # MLflow creates its tables in the public schema
    assert (user, superuser, database) == ("mlflow", False, "mlflow")


def test_secrets_are_private_files(cluster):
    for role in (postgres.SUPERUSER, postgres.ROLE):
        mode = (cluster.folder / f"{role}.password").stat().st_mode & 0o777
        assert mode == 0o600, role
    assert cluster.folder.stat().st_mode & 0o777 == 0o700


def test_server_process_never_runs_as_root(cluster):
    pid = (cluster.data / "postmaster.pid").read_text().split()[0]
    user = subprocess.run(["ps", "-o", "user=", "-p", pid], capture_output=True, text=True).stdout.strip()
    assert user
    assert user != "root"
    if os.geteuid() == 0:
        assert user == cluster.user == "postgres"


def test_stop_stops_and_start_keeps_the_data(folder):
    first = postgres.start(folder)
    try:
        with psycopg.connect(postgres.libpq_url(first.url()), autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (x int)")
            conn.execute("INSERT INTO kept VALUES (42)")
    finally:
        postgres.stop(first)
    assert not postgres.is_running(first)
    assert not port_open(first.port)
    second = postgres.start(folder)
    try:
        with psycopg.connect(postgres.libpq_url(second.url())) as conn:
            assert conn.execute("SELECT x FROM kept").fetchall() == [(42,)]
    finally:
        postgres.stop(second)


def test_a_cluster_left_running_is_restarted(folder):
    """A session killed before it could stop its cluster does not block the next start."""
    left = postgres.start(folder)
    again = postgres.start(folder)
    try:
        assert not port_open(left.port)
        assert port_open(again.port)
    finally:
        postgres.stop(again)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the cluster to another user")
def test_a_folder_closed_to_the_postgres_user_is_a_clear_error(tmp_path):
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    with pytest.raises(postgres.PostgresError, match=r"^user postgres .* cannot reach .*/closed/cluster: "):
        postgres.start(closed / "cluster")

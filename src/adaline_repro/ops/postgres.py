"""A throw-away local PostgreSQL for `./pipeline server`: its own folder, loopback only, never run as root.

The cluster lives in one folder: `data/` (initdb's), `postgres.log`, and two generated passwords (0600):
the superuser's, used only here to create the `mlflow` role and database, and that role's, which goes into
the backend store URL. It listens on 127.0.0.1 only (no Unix socket) and asks every client for a password
(scram-sha-256). PostgreSQL refuses to run as root; when we are root it runs as the user `postgres`
(Debian's package creates it; ADALINE_PG_USER names another).
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from adaline_repro.core.errors import StoreError
from adaline_repro.core.tracking_uri import redacted

DATABASE = ROLE = "mlflow"
SUPERUSER = "postgres"
HOST = "127.0.0.1"
_START_TIMEOUT_S = 60
_CONF = """
# Written by ./pipeline server: loopback TCP only, no Unix socket, passwords always.
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
password_encryption = 'scram-sha-256'
"""


class PostgresError(StoreError):
    """The local cluster could not be set up, started or stopped."""


def bin_dir() -> Path:
    """The folder holding initdb and pg_ctl: on PATH, else Debian's /usr/lib/postgresql/<newest>/bin."""
    found = shutil.which("pg_ctl")
    if found and (Path(found).resolve().parent / "initdb").exists():
        return Path(found).resolve().parent
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda p: [int(n) for n in re.findall(r"\d+", p.parts[-3])],
    )
    if debian:
        return debian[-1].parent
    raise PostgresError(
        "PostgreSQL's initdb and pg_ctl were not found: install it (sudo apt-get install postgresql), "
        "or give ./pipeline server --db postgresql+psycopg://... to use a server you already run"
    )


def os_user() -> str | None:
    """The user PostgreSQL runs as when we are root (None: the current user runs it)."""
    if os.geteuid() != 0:
        return None
    name = os.environ.get("ADALINE_PG_USER", "postgres")
    try:
        pwd.getpwnam(name)
    except KeyError:
        raise PostgresError(
            f"PostgreSQL refuses to run as root and there is no user {name!r} to run it as; "
            "create one or name another with ADALINE_PG_USER"
        ) from None
    return name


@dataclass(frozen=True)
class Cluster:
    folder: Path
    port: int
    user: str | None  # the OS user running it; None: the current user

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def url(self, role: str = ROLE, database: str = DATABASE) -> str:
        """SQLAlchemy URL for MLflow (psycopg 3), password included: pass it by environment, never argv."""
        password = urllib.parse.quote(_password(self.folder, role), safe="")
        return f"postgresql+psycopg://{role}:{password}@{HOST}:{self.port}/{database}"


def libpq_url(url: str) -> str:
    """A SQLAlchemy `postgresql+psycopg://` URL as psycopg itself takes it."""
    return re.sub(r"^postgresql\+psycopg://", "postgresql://", url)


def _password_file(folder: Path, role: str) -> Path:
    return folder / f"{role}.password"


def _password(folder: Path, role: str) -> str:
    return _password_file(folder, role).read_text(encoding="utf-8").strip()


def _as(user: str | None, command: list[str]) -> list[str]:
    return ["runuser", "-u", user, "--", *command] if user else command


def _run(user: str | None, command: list[str], what: str) -> None:
    done = subprocess.run(_as(user, command), capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        detail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise PostgresError(f"{what} failed: {detail}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def _give_to(user: str | None, *paths: Path) -> None:
    if user:
        entry = pwd.getpwnam(user)
        for path in paths:
            os.chown(path, entry.pw_uid, entry.pw_gid)


def _prepare_folder(folder: Path, user: str | None) -> None:
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    folder.chmod(0o700)
    _give_to(user, folder)
    if user and subprocess.run(_as(user, ["test", "-w", str(folder)])).returncode != 0:
        raise PostgresError(
            f"user {user} (who runs PostgreSQL, since it refuses root) cannot reach {folder}: a folder above it "
            "is closed to other users; choose a folder it can reach (--folder), e.g. under /tmp or /srv"
        )


def _write_secret(path: Path, user: str | None) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(secrets.token_urlsafe(24) + "\n")
    _give_to(user, path)


def _initdb(folder: Path, user: str | None) -> None:
    for role in (SUPERUSER, ROLE):
        _write_secret(_password_file(folder, role), user)
    command = [
        str(bin_dir() / "initdb"), "-D", str(folder / "data"), "-U", SUPERUSER,
        f"--pwfile={_password_file(folder, SUPERUSER)}", "--auth=scram-sha-256", "-E", "UTF8", "--no-locale",
    ]  # fmt: skip
    _run(user, command, "initdb")
    with (folder / "data" / "postgresql.conf").open("a", encoding="utf-8") as conf:
        conf.write(_CONF)


def _pg_ctl(cluster: Cluster, *args: str) -> list[str]:
    return [str(bin_dir() / "pg_ctl"), "-D", str(cluster.data), *args]


def is_running(cluster: Cluster) -> bool:
    command = _as(cluster.user, _pg_ctl(cluster, "status"))
    return subprocess.run(command, capture_output=True, timeout=60).returncode == 0


def start(folder: Path, port: int | None = None) -> Cluster:
    """Create the cluster on first use, start it on a loopback port, and make the `mlflow` role and database."""
    folder = folder.resolve()
    user = os_user()
    _prepare_folder(folder, user)
    if not (folder / "data" / "PG_VERSION").exists():
        _initdb(folder, user)
    cluster = Cluster(folder, port or free_port(), user)
    if is_running(cluster):  # left by a session that was killed: it is ours, restart it on our port
        stop(cluster)
    log = folder / "postgres.log"
    try:
        command = _pg_ctl(
            cluster, "-l", str(log), "-w", "-t", str(_START_TIMEOUT_S), "-o", f"-p {cluster.port}", "start"
        )
        _run(user, command, "starting PostgreSQL")
    except PostgresError as exc:
        tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:]) if log.exists() else ""
        raise PostgresError(f"{exc} (log {log}: {tail})") from None
    try:
        _ensure_database(cluster)
    except BaseException:
        stop(cluster)
        raise
    return cluster


def _ensure_database(cluster: Cluster) -> None:
    import psycopg
    from psycopg import sql

    admin = libpq_url(cluster.url(SUPERUSER, "postgres"))
    with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ROLE,)).fetchone() is None:
            password = sql.Literal(_password(cluster.folder, ROLE))
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(ROLE), password))
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(DATABASE), sql.Identifier(ROLE)))


def stop(cluster: Cluster) -> None:
    """Fast shutdown: open sessions are rolled back, the data stays for the next start."""
    if is_running(cluster):
        _run(cluster.user, _pg_ctl(cluster, "-m", "fast", "-w", "-t", str(_START_TIMEOUT_S), "stop"),
             "stopping PostgreSQL")  # fmt: skip


def check_reachable(url: str) -> None:
    """Connect once (5 s at most) so a wrong URL or a stopped server is one clear line, not a traceback."""
    import psycopg

    try:
        with psycopg.connect(libpq_url(url), connect_timeout=5):
            pass
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise PostgresError(f"cannot connect to {redacted(url)}: {reason}") from None

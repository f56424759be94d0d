"""`./pipeline server`: a shared MLflow tracking server with a PostgreSQL backend store.

By default it starts a throw-away local PostgreSQL in `<folder>/postgres` (see postgres.py) and keeps
artifacts in `<folder>/artifacts`; `--db` uses a PostgreSQL you already run, `--artifacts` any artifact
store MLflow supports (s3://..., gs://..., a folder). Everything it started stops when it stops.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from adaline_repro.core.tracking_uri import redacted
from adaline_repro.ops import mlflow_process, postgres

DB_SCHEME = "postgresql+psycopg://"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class Options:
    folder: Path  # state: postgres/ (the local cluster), artifacts/ (default destination), mlflow.log
    db: str | None  # postgresql+psycopg:// URL of an existing database; None: the local cluster
    artifacts: str | None  # artifact destination URI or folder; None: <folder>/artifacts
    host: str
    port: int
    workers: int


def artifact_destination(options: Options) -> str:
    """A URI MLflow takes: any `scheme://` as given, a folder made absolute (the server's cwd is not ours)."""
    if options.artifacts and "://" in options.artifacts:
        return options.artifacts
    folder = Path(options.artifacts).resolve() if options.artifacts else (options.folder / "artifacts").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder)


def check_db_url(url: str) -> None:
    if not url.startswith(DB_SCHEME):
        raise mlflow_process.ServerError(
            f"--db takes a {DB_SCHEME}user:password@host:port/database URL (psycopg 3 is the driver "
            f"installed), got {redacted(url)}"
        )


def serve(options: Options, say: Callable[[str], None]) -> None:
    """Start the database (unless given) and the MLflow server; block until the server exits or we are stopped."""
    if options.db is not None:
        check_db_url(options.db)
    if options.workers < 1:
        raise mlflow_process.ServerError(f"--workers must be at least 1 (got {options.workers})")
    mlflow_process.ensure_port_free(options.host, options.port)
    with contextlib.ExitStack() as running:
        if options.db is None:
            cluster = postgres.start(options.folder / "postgres")
            running.callback(postgres.stop, cluster)
            backend = cluster.url()
            runs_as = f"as user {cluster.user}" if cluster.user else "as you"
            say(f"PostgreSQL on {postgres.HOST}:{cluster.port}, {runs_as}, data in {cluster.data}")
        else:
            postgres.check_reachable(options.db)
            backend = options.db
        artifacts = artifact_destination(options)
        log = (options.folder / "mlflow.log").resolve()
        server = mlflow_process.start(
            backend, options.host, options.port, log,
            workers=options.workers, options=["--artifacts-destination", artifacts],
        )  # fmt: skip
        running.callback(mlflow_process.stop, server)
        # Bound to every interface, it still answers on loopback: the URI to export on this machine.
        base_host = "127.0.0.1" if options.host in ("0.0.0.0", "::") else options.host  # noqa: S104
        base = f"http://{f'[{base_host}]' if ':' in base_host else base_host}:{options.port}"
        took = mlflow_process.wait_until_up(base, server, log)
        say(f"MLflow tracking server on {base}, ready after {took:.1f} s")
        say(f"  backend store: {redacted(backend)}")
        say(f"  artifacts:     {artifacts}")
        say(f"  server log:    {log}")
        if options.host not in _LOOPBACK:
            say(
                f"  bound to {options.host}: reachable from other machines. MLflow's host and CORS checks are on "
                "(localhost and private networks); there is no login, so keep it on a trusted network."
            )
        say("Point the pipeline at it (Ctrl-C here stops the server and the database):")
        say(f"export MLFLOW_TRACKING_URI={base}")
        server.wait()
        raise mlflow_process.ServerError(f"mlflow server exited with {server.returncode} (log: {log})")


def _exit_on_hangup(signum: int, frame: object) -> None:
    """The terminal closed: unwind like Ctrl-C, so MLflow and PostgreSQL are stopped."""
    raise SystemExit(128 + signum)


def command(options: Options, say: Callable[[str], None]) -> None:
    """`./pipeline server`: run until Ctrl-C or the terminal closes, then stop MLflow, then PostgreSQL.
    SIGINT is restored because a shell's background job starts with it ignored."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGHUP, _exit_on_hangup)
    try:
        serve(options, say)
    except (mlflow_process.ServerError, postgres.PostgresError) as exc:
        raise type(exc)(f"server: {exc}") from None
    except KeyboardInterrupt:
        say("\nserver: stopped (MLflow and PostgreSQL)")

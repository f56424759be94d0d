"""./pipeline server end to end: a real MLflow server on a real PostgreSQL, the pipeline and a queue of
experiments logging to it, and everything stopped afterwards."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import psycopg
import pytest
from bench import sweep

from adaline_repro.backends import BACKENDS
from adaline_repro.ops import postgres
from tests.conftest import (
    Background,
    assert_each_experiment_logged_once,
    free_port,
    make_clone,
    output_hashes,
    port_open,
    run_cmd,
    stored_runs,
)

READY_TIMEOUT_S = 240


def _state_folder() -> Path:
    """A folder PostgreSQL's own user can reach (pytest's tmp_path is closed to other users when root)."""
    folder = Path(tempfile.mkdtemp(prefix="adaline-server-test-"))
    folder.chmod(0o755)
    return folder


@dataclass
class Server:
    uri: str
    port: int
    state: Path
    proc: Background


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    """A fresh clone that logs to its own embedded store (no MLFLOW_TRACKING_URI)."""
    root, env = make_clone(tmp_path_factory)
    env.pop("MLFLOW_TRACKING_URI")
    return root, env


@pytest.fixture(scope="module")
def server(clone) -> Iterator[Server]:
    """`./pipeline server` with its throw-away PostgreSQL; on the way out, Ctrl-C must stop both."""
    root, env = clone
    state, port = _state_folder(), free_port()
    proc = Background(["./pipeline", "server", "--folder", str(state), "--port", str(port)], root, env)
    try:
        uri = proc.wait_for("export MLFLOW_TRACKING_URI=", READY_TIMEOUT_S).split("=", 1)[1]
        pg_port = int(re.search(r"^PostgreSQL on 127\.0\.0\.1:(\d+),", proc.lines[0]).group(1))
        yield Server(uri, port, state, proc)
    finally:
        code = proc.interrupt()
        pid_file_left = (state / "postgres" / "data" / "postmaster.pid").exists()
        shutil.rmtree(state, ignore_errors=True)
    assert code == 0, "\n".join(proc.lines)
    assert proc.lines[-1] == "server: stopped (MLflow and PostgreSQL)"
    assert not port_open(port), "MLflow outlived ./pipeline server"
    assert not port_open(pg_port), "PostgreSQL outlived ./pipeline server"
    assert not pid_file_left, "PostgreSQL was not shut down cleanly"


def test_server_prints_the_uri_to_export_and_runs_postgres_as_a_user(server):
    assert server.uri == f"http://127.0.0.1:{server.port}"
    first = server.proc.lines[0]
    expected_user = "as user postgres" if os.geteuid() == 0 else "as you"
    assert re.fullmatch(
        rf"PostgreSQL on 127\.0\.0\.1:\d+, {expected_user}, data in {server.state}/postgres/data", first
    )
    backend = next(line for line in server.proc.lines if "backend store:" in line)
    assert re.search(r"backend store: postgresql\+psycopg://mlflow:\*\*\*@127\.0\.0\.1:\d+/mlflow$", backend)
    password = (server.state / "postgres" / "mlflow.password").read_text().strip()
    assert not any(password in line for line in server.proc.lines)
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert password not in ps, "the database password is visible in the process list"


def _snapshot(uri: str) -> dict:
    """What a store holds about the latest execution, minus ids and times: run names, statuses, params,
    metrics with their full histories, tags, dataset inputs and artifact contents."""
    client = mlflow.MlflowClient(uri)
    runs = stored_runs(uri)
    parent = next(r for r in runs if r.data.tags.get("adaline.role") == "execution")
    family = [parent] + [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    # adaline.process: the PID and start time of the process that logged, a different one each time
    volatile = {"mlflow.parentRunId", "mlflow.user", "mlflow.log-model.history", "adaline.process"}
    out = {}
    for run in family:
        run_id = run.info.run_id
        out[run.info.run_name] = {
            "status": run.info.status,
            "params": run.data.params,
            "metrics": {
                key: [(m.step, m.value) for m in client.get_metric_history(run_id, key)] for key in run.data.metrics
            },
            "tags": {k: v for k, v in run.data.tags.items() if k not in volatile},
            "inputs": sorted(
                (d.dataset.name, d.dataset.digest, [t.value for t in d.tags]) for d in run.inputs.dataset_inputs
            ),
            "artifacts": {
                a.path: Path(client.download_artifacts(run_id, a.path, tempfile.mkdtemp())).read_bytes()
                for a in client.list_artifacts(run_id)
            },
        }
    return out


def test_repro_logs_to_the_server_exactly_what_the_embedded_store_gets(clone, server):
    root, env = clone
    run_cmd(["./pipeline", "repro"], root, env)  # the embedded store: <clone>/mlflow.db
    embedded = f"sqlite:///{root}/mlflow.db"
    done = run_cmd(["./pipeline", "repro"], root, {**env, "MLFLOW_TRACKING_URI": server.uri})
    ran = [line.split("'")[1] for line in done.stdout.splitlines() if line.startswith("Running stage")]
    assert ran == ["track"], done.stdout  # a new store gets the execution; nothing is retrained
    on_server, locally = _snapshot(server.uri), _snapshot(embedded)
    assert sorted(on_server) == sorted(locally)
    assert len(on_server) == 1 + len(BACKENDS)
    for name in locally:
        assert on_server[name] == locally[name], name


def test_ui_points_at_the_server(clone, server):
    """`./pipeline ui` with the server's URI starts nothing and links the server's latest execution (logged
    here if no other test has: a repro to another store re-runs track alone)."""
    root, env = clone
    run_cmd(["./pipeline", "repro"], root, {**env, "MLFLOW_TRACKING_URI": server.uri})
    done = run_cmd(["./pipeline", "ui"], root, {**env, "MLFLOW_TRACKING_URI": server.uri})
    assert f"tracking server {server.uri}: nothing to start" in done.stdout
    link = next(line for line in done.stdout.splitlines() if line.startswith("compare view: "))
    assert link.startswith(f"compare view: {server.uri}/#/compare-runs?runs=")
    on_server = {r.info.run_id for r in stored_runs(server.uri)}
    linked = re.findall(r"[0-9a-f]{32}", link.split("runs=", 1)[1].split("&", 1)[0].replace("%22", ""))
    assert len(linked) == len(BACKENDS)
    assert set(linked) <= on_server


def test_queued_experiments_on_two_workers_log_once_each(clone, server):
    """`dvc exp run --queue` x 2, `dvc queue start -j 2`: two workers log to the server at once from DVC's
    temporary copies; every run once, FINISHED, all epochs; no error in any log. (Against the embedded
    store, whose creation two workers race for: test_sweep.py.)"""
    root, env = clone
    env = {**env, "MLFLOW_TRACKING_URI": server.uri}
    names = [f"server-seed-{seed}" for seed in range(300, 302)]
    sweep.enqueue(root, env, {name: [f"train.seed={name.rsplit('-', 1)[1]}"] for name in names})
    result = sweep.run(root, env, names, jobs=2, timeout_s=1200)
    print(f"{len(names)} queued experiments against the server: {result.wall_s:.1f} s")
    assert result.succeeded == sorted(names), (result.ended, result.status)
    assert_each_experiment_logged_once(server.uri, names, BACKENDS, epochs=20)
    for name in names:
        log = sweep.logs(root, env, name)
        assert "track: logged run" in log, log
        assert not re.search(r"ERROR|Traceback", log), log
    server_log = (server.state / "mlflow.log").read_text()
    assert not re.search(r"\bERROR\b|Traceback", server_log), server_log[-3000:]
    pg_log = (server.state / "postgres" / "postgres.log").read_text()
    # Two workers may create the experiment, or a dataset, at the same moment: PostgreSQL logs the loser's
    # unique-key violation, and the pipeline looks the row up again (tracking/store.py). Nothing else.
    handled = re.compile(
        r'ERROR:  duplicate key value violates unique constraint "(uq_experiments_workspace_name|dataset_pk)"'
    )
    unexpected = [line for line in pg_log.splitlines() if re.search(r"\b(ERROR|FATAL|PANIC):", line)
                  and not handled.search(line)]  # fmt: skip
    assert unexpected == [], pg_log[-3000:]


def test_server_on_a_database_given_by_url_leaves_that_database_running(clone):
    """--db (here by ADALINE_SERVER_DB, which keeps the password off the command line): MLflow's tables
    and runs land in that database, and stopping the server does not stop a database it did not start."""
    root, env = clone
    db_folder, state = _state_folder(), _state_folder()
    cluster = postgres.start(db_folder / "db")
    try:
        port = free_port()
        proc = Background(
            ["./pipeline", "server", "--folder", str(state), "--port", str(port)],
            root, {**env, "ADALINE_SERVER_DB": cluster.url()},
        )  # fmt: skip
        try:
            uri = proc.wait_for("export MLFLOW_TRACKING_URI=", READY_TIMEOUT_S).split("=", 1)[1]
            client = mlflow.MlflowClient(uri)
            run = client.create_run(client.create_experiment("by-url"))
            client.set_terminated(run.info.run_id)
        finally:
            assert proc.interrupt() == 0, "\n".join(proc.lines)
        assert not any(line.startswith("PostgreSQL on") for line in proc.lines)
        assert postgres.is_running(cluster)
        with psycopg.connect(postgres.libpq_url(cluster.url())) as conn:
            rows = conn.execute("SELECT status FROM runs WHERE run_uuid = %s", (run.info.run_id,)).fetchall()
        assert rows == [("FINISHED",)]
    finally:
        postgres.stop(cluster)
        shutil.rmtree(db_folder, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)


def test_a_database_url_of_another_driver_is_refused(clone):
    root, env = clone
    done = run_cmd(["./pipeline", "server", "--db", "postgresql://u:pw@127.0.0.1/db"], root, env, check=False)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: server: --db takes a postgresql+psycopg://user:password@host:port/database URL "
        "(psycopg 3 is the driver installed), got postgresql://u:***@127.0.0.1/db"
    )


def test_an_unreachable_server_stops_the_pipeline_before_training(clone):
    """One line naming the URI, exit 3; no stage runs, outputs and the other store keep their content.
    The train stage checks too, for `dvc repro` and queued experiments that bypass ./pipeline."""
    root, env = clone
    run_cmd(["./pipeline", "repro"], root, env)
    before, runs_before = output_hashes(root), len(stored_runs(f"sqlite:///{root}/mlflow.db"))
    uri = f"http://127.0.0.1:{free_port()}"
    message = (
        f"error: tracking store {uri} is unreachable ([Errno 111] Connection refused); "
        "start it (./pipeline server) or unset MLFLOW_TRACKING_URI to log to the embedded store"
    )
    (root / "params.yaml").write_text((root / "params.yaml").read_text().replace("lr: 0.01", "lr: 0.02"))
    try:
        done = run_cmd(["./pipeline", "repro"], root, {**env, "MLFLOW_TRACKING_URI": uri}, check=False)
        assert (done.returncode, done.stderr.strip(), done.stdout) == (3, message, "")
        stage = ["./pipeline", "stage", "train", "--backend", "manual", "--train", "data/prepared/train.csv",
                 "--model", "models/manual.json", "--curve", "plots/loss/manual.csv",
                 "--steps", "steps/manual.csv"]  # fmt: skip
        done = run_cmd(stage, root, {**env, "MLFLOW_TRACKING_URI": uri, "DVC_ROOT": str(root)}, check=False)
        assert (done.returncode, done.stderr.strip(), done.stdout) == (3, message, "")
    finally:
        run_cmd(["git", "checkout", "params.yaml"], root, env)
    assert output_hashes(root) == before
    assert len(stored_runs(f"sqlite:///{root}/mlflow.db")) == runs_before

"""`./pipeline sweep` on a real Ray: the table's bytes do not depend on how many workers ran it, its trials
are DVC's own bytes (--verify, both ways), each trial is in MLflow once however often the sweep is resumed
or interrupted, Ray listens on loopback only, and a worker without the CPU pins is refused, not mixed in."""

from __future__ import annotations

import csv
import io
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from adaline_repro.core.errors import EXIT_BROKEN, EXIT_INTERRUPTED, EXIT_VERIFY
from adaline_repro.sweep.journal import Journal
from tests.conftest import REPO, VENV, free_port, make_clone, port_open, run_cmd, stored_runs

GRID = ["-S", "train.lr=0.01,1.0", "-S", "train.batch_size=7,35", "-S", "prepare.seed=1,2"]


def sweep(root: Path, env: dict, *args: str, check: bool = True, log: bool = False) -> subprocess.CompletedProcess:
    return run_cmd(["./pipeline", "sweep", *GRID, *([] if log else ["--no-log"]), *args], root, env, check=check)


def table(root: Path) -> bytes:
    (path,) = (root / "sweeps").glob("*/trials.csv")
    return path.read_bytes()


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    return make_clone(tmp_path_factory)


def test_one_worker_and_two_write_the_same_table(clone):
    root, env = clone
    shutil.rmtree(root / "sweeps", ignore_errors=True)
    sweep(root, env, "--workers", "1")
    one = table(root)
    shutil.rmtree(root / "sweeps")
    done = sweep(root, env, "--workers", "2")
    assert table(root) == one
    assert "sweep: 4 agree, 2 differ, 2 failed of 8 trials" in done.stdout
    assert (next((root / "sweeps").glob("*/agreement.png"))).read_bytes().startswith(b"\x89PNG")
    header, *rows = list(csv.reader(io.StringIO(one.decode())))
    assert header[:6] == ["trial", "train.lr", "train.batch_size", "prepare.seed", "verdict", "tolerance_ratio"]
    failed = [dict(zip(header, r, strict=True)) for r in rows if r[4] == "error"]
    assert [(r["train.lr"], r["train.batch_size"], r["prepare.seed"]) for r in failed] == [
        ("1.0", "7", "1"),
        ("1.0", "7", "2"),
    ]
    assert all(r["error"].startswith("manual: diverged at epoch ") for r in failed)
    assert [r["command"] for r in failed] == [
        f"./pipeline dvc exp run -S train.lr=1.0 -S train.batch_size=7 -S prepare.seed={seed}" for seed in (1, 2)
    ]


def test_a_resumed_sweep_logs_each_trial_once_and_verify_finds_dvc_s_bytes_but_the_one_that_differs(clone):
    """The trial --verify-seed 0 picks is lr 1.0 at minibatch 35, whose backends differ: DVC's compare fails
    there too, and every file but the one altered in the journal has the sweep's md5."""
    root, env = clone
    if not list((root / "sweeps").glob("*/journal.jsonl")):
        sweep(root, env)
    (journal,) = (root / "sweeps").glob("*/journal.jsonl")
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    for record in records:
        if not record["error"]:  # what trials that drifted from DVC would have recorded
            record["files"]["models/module.json"] = "0" * 32
    journal.write_text("".join(json.dumps(r) + "\n" for r in records))
    done = sweep(root, env, "--verify", "1", "--verify-seed", "0", check=False, log=True)
    assert "sweep: 8 trials (8 already in" in done.stdout
    assert "Ray on this machine" not in done.stdout
    assert done.returncode == EXIT_VERIFY, done.stdout + done.stderr
    (named,) = [line for line in done.stdout.splitlines() if line.startswith("sweep --verify: trial ")]
    assert "(train.lr=1.0 train.batch_size=35 prepare.seed=1): " in named
    found = named.split("): ", 1)[1].split("; ")
    assert len(found) == 1, found
    assert found[0].startswith(f"models/module.json: md5 {'0' * 32} in the sweep, ")
    assert "sweep --verify: FAILED:" in done.stdout
    sweep(root, env, log=True)  # again: nothing new to log
    runs = [r for r in stored_runs(env["MLFLOW_TRACKING_URI"]) if "adaline.sweep" in r.data.tags]
    parents = [r for r in runs if r.data.tags.get("adaline.role") == "sweep"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert len(parents) == 1
    assert sorted(r.data.tags["adaline.trial"] for r in children) == sorted(r["id"] for r in records)
    assert {r.info.status for r in runs} == {"FINISHED"}
    verdicts = {r.data.tags["adaline.trial"]: r.data.tags["verdict"] for r in children}
    assert sorted(verdicts.values()) == ["agree"] * 4 + ["differ"] * 2 + ["error"] * 2
    assert all(set(r.data.params) == {"train.lr", "train.batch_size", "prepare.seed"} for r in children)
    assert parents[0].data.metrics["agree"] == 4


LISTENERS = """
import json, psutil
from adaline_repro.sweep import cluster
cluster.start(None, 2)
import ray
where = ray.remote(num_cpus=1)(lambda: ray.get_runtime_context().get_node_id())  # a task on each worker
ray.get([where.remote() for _ in range(2)])
me = psutil.Process()
pids = {me.pid} | {p.pid for p in me.children(recursive=True)}
found = [(c.laddr.ip, c.laddr.port, psutil.Process(c.pid).name()) for c in psutil.net_connections("inet")
         if c.status == psutil.CONN_LISTEN and c.pid in pids]
print(json.dumps({"listeners": found, "nodes": [n["NodeManagerAddress"] for n in ray.nodes()]}))
cluster.stop()
"""


def test_the_embedded_ray_registers_and_listens_on_loopback_only():
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run([sys.executable, "-c", LISTENERS], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["nodes"] == ["127.0.0.1"]
    names = {name for _, _, name in seen["listeners"]}
    assert {"gcs_server", "raylet"} <= names, seen
    assert {ip for ip, _, _ in seen["listeners"]} <= {"127.0.0.1", "::ffff:127.0.0.1", "::1"}, seen


def test_a_cluster_worker_without_the_cpu_pins_is_refused_by_name(clone, tmp_path):
    root, env = clone
    shutil.rmtree(root / "sweeps", ignore_errors=True)  # no journal: every trial would go to the node
    sessions = Path(tempfile.mkdtemp(prefix="ray-"))  # short: Ray's socket paths must fit in 107 bytes
    port = free_port()
    ray_env = {
        **env,
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # one machine: the node registers on loopback
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(16),
    }
    head = [str(VENV / "bin" / "ray"), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
            f"--port={port}", "--num-cpus=1", "--include-dashboard=false", f"--temp-dir={sessions}"]  # fmt: skip
    # The node's own environment switches the pins off: its workers start without them.
    node = subprocess.Popen(head, cwd=root, env={**ray_env, "ADALINE_CPU_PINS": "off"}, start_new_session=True,
                            stdout=(tmp_path / "head.log").open("w"), stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not port_open(port):
            assert node.poll() is None, (tmp_path / "head.log").read_text()
            assert time.monotonic() < deadline, "ray start --head did not open its port"
            time.sleep(0.2)
        done = sweep(root, ray_env, "--address", f"127.0.0.1:{port}", check=False)
        assert done.returncode == EXIT_BROKEN, done.stdout + done.stderr
        line = done.stderr.strip().splitlines()[-1]
        assert line.startswith("error: sweep: the worker on "), line
        assert "differs from this machine: cpu_pins.enabled: True -> False" in line
        assert "its trials were not run" in line
    finally:
        if node.poll() is None:
            os.killpg(node.pid, signal.SIGKILL)  # its processes share its group; a drain would take 30 s
        node.wait(timeout=90)
        shutil.rmtree(sessions, ignore_errors=True)


def test_ctrl_c_keeps_the_finished_trials_and_the_same_command_resumes_without_repeating_one(tmp_path_factory):
    root, env = make_clone(tmp_path_factory)
    command = ["./pipeline", "sweep", "-S", "train.seed=range(1,41)", "-S", "train.epochs=2", "--workers", "1"]
    sweeping = subprocess.Popen(command, cwd=root, env=env, start_new_session=True, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 300
    journal = None
    while time.monotonic() < deadline and sweeping.poll() is None:
        found = list((root / "sweeps").glob("*/journal.jsonl"))
        if found and found[0].read_text().count("\n") >= 3:
            journal = found[0]
            break
        time.sleep(0.1)
    assert journal is not None, "no trial finished"
    os.killpg(sweeping.pid, signal.SIGINT)  # what Ctrl-C sends to the terminal's foreground group
    out, err = sweeping.communicate(timeout=120)
    assert sweeping.returncode == EXIT_INTERRUPTED, out + err
    assert "sweep: interrupted: " in out
    kept = len(Journal(journal).done())
    assert 3 <= kept < 40
    done = run_cmd(command, root, env)
    assert f"sweep: 40 trials ({kept} already in" in done.stdout
    assert f"{40 - kept} to run" in done.stdout
    runs = [r for r in stored_runs(env["MLFLOW_TRACKING_URI"]) if "adaline.sweep" in r.data.tags]
    children = [r.data.tags["adaline.trial"] for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert len(children) == len(set(children)) == 40
    assert [r.info.status for r in runs if r.data.tags.get("adaline.role") == "sweep"] == ["FINISHED"]
    assert len(Journal(journal).done()) == 40

"""`./pipeline sweep --address` on a real two-node Ray cluster, each node in a network namespace of its own
(tests/e2e/netns.py): Ray listens only inside the namespaces, a node killed mid-sweep loses no trial and
logs none twice, the table is the bytes the trials make in one process, and a sweep whose head dies resumes
from its journal."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from adaline_repro.core.checkout import pipeline_paths
from adaline_repro.dvc_support.overrides import Overrides
from adaline_repro.sweep import table, trial
from adaline_repro.sweep.grid import trials
from adaline_repro.sweep.journal import Journal
from tests.conftest import VENV, make_clone, run_cmd, stored_runs
from tests.e2e import netns

PORT = 6379  # each namespace has its own ports: no clash with anything on the host
LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}
WILDCARD = {"*", "0.0.0.0", "::"}  # noqa: S104 (in a namespace: its own addresses, no others)


@pytest.fixture
def spaces():
    if why := netns.available():
        pytest.skip(f"no network namespaces here ({why})")
    with netns.pair() as pair:
        yield pair


class Node:
    """`ray start --block` inside a namespace, its output in a file."""

    def __init__(self, space: netns.Namespace, env: dict, log: Path, *args: str) -> None:
        self.space, self.log = space, log
        self.temp = tempfile.mkdtemp(prefix="ray-")  # short: Ray's socket paths must fit in 107 bytes
        ray = str(VENV / "bin" / "ray")
        command = [ray, "start", "--block", f"--node-ip-address={space.ip}", "--num-cpus=1", f"--temp-dir={self.temp}"]
        self.process = subprocess.Popen(space.command([*command, *args]), env=env, start_new_session=True,
                                        stdout=log.open("w"), stderr=subprocess.STDOUT)  # fmt: skip

    def wait_started(self) -> None:
        deadline = time.monotonic() + 180
        while "Ray runtime started" not in self.log.read_text():
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.2)

    def kill(self, spare: int | None = None) -> None:
        """SIGKILL every process of the node (what a machine's failure does to them), but `spare`."""
        for pid in self.space.pids() - {spare}:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(timeout=60)


def wait_for(root: Path, done, known: frozenset[Path] = frozenset(), seconds: float = 300) -> Path:
    """A new sweep's journal (not one of `known`), once `done(records)` holds for what it has."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = [p for p in (root / "sweeps").glob("*/journal.jsonl") if p not in known]
        if found and done(list(Journal(found[0]).done().values())):
            return found[0]
        time.sleep(0.05)
    raise AssertionError("the sweep's journal never got there")


def test_a_two_node_sweep_listens_in_its_namespaces_survives_a_node_kill_and_resumes_after_the_head_dies(
    spaces, tmp_path_factory, tmp_path
):
    root, env = make_clone(tmp_path_factory)
    head_ns, worker_ns = spaces
    env = {**env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    address = f"{head_ns.ip}:{PORT}"
    head = Node(head_ns, env, tmp_path / "head.log", "--head", f"--port={PORT}", "--include-dashboard=false")
    head.wait_started()
    worker = Node(worker_ns, env, tmp_path / "worker.log", f"--address={address}")
    try:
        worker.wait_started()

        # Where Ray listens: inside the namespaces only, on their own addresses or loopback.
        for space in spaces:
            assert space.addresses() <= LOOPBACK | {space.ip}, space.addresses()
            listeners = space.listeners()
            assert "raylet" in {name for _, _, name in listeners}, listeners
            assert {host for host, _, _ in listeners} <= LOOPBACK | WILDCARD | {space.ip}, listeners
        assert "gcs_server" in {name for _, _, name in head_ns.listeners()}
        ours = head_ns.pids() | worker_ns.pids()
        on_host = [c for c in psutil.net_connections("inet") if c.status == psutil.CONN_LISTEN and c.pid in ours]
        assert on_host == [], on_host

        # A node killed mid-sweep: its trials are retried on the other, none is lost or logged twice.
        grid = ["-S", "train.seed=range(1,13)", "-S", "train.epochs=100"]
        sweeping = subprocess.Popen(head_ns.command(["./pipeline", "sweep", *grid, "--address", address]), cwd=root,
                                    env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        first = wait_for(root, lambda rs: len({r.worker["node"] for r in rs}) == 2 and len(rs) >= 3)
        worker.kill()
        out, err = sweeping.communicate(timeout=300)
        assert sweeping.returncode == 0, out + err
        assert "2 node(s), 2 CPUs" in out
        folder = first.parent
        records = Journal(folder / "journal.jsonl").done()
        assert len(records) == 12
        assert len({r.worker["node"] for r in records.values()}) == 2
        applied = Overrides((root / "params.yaml").read_text())
        chosen = trials(applied, [grid[1], grid[3]])
        alone = {t.id: trial.execute(t, applied, pipeline_paths(root)) for t in chosen}  # one process, no Ray
        assert (folder / "trials.csv").read_text() == table.table_text(table.frame(chosen, alone))
        runs = [r for r in stored_runs(env["MLFLOW_TRACKING_URI"]) if "adaline.sweep" in r.data.tags]
        children = [r.data.tags["adaline.trial"] for r in runs if r.data.tags.get("mlflow.parentRunId")]
        assert sorted(children) == sorted(records)

        # The head dies mid-sweep: the sweep ends with its journal kept, and the same command resumes on
        # this machine's embedded Ray.
        grid = ["-S", "train.seed=range(13,25)", "-S", "train.epochs=100"]
        # Ray's driver gives up on a head that does not answer after this (default 60 s).
        lost = {**env, "RAY_gcs_rpc_server_reconnect_timeout_s": "5"}
        sweeping = subprocess.Popen(head_ns.command(["./pipeline", "sweep", *grid, "--address", address]), cwd=root,
                                    env=lost, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        journal = wait_for(root, lambda rs: len(rs) >= 3, known=frozenset({first}))
        head.kill(spare=sweeping.pid)
        out, err = sweeping.communicate(timeout=300)
        assert sweeping.returncode != 0, out + err
        kept = len(Journal(journal).done())
        assert kept >= 3
        done = run_cmd(["./pipeline", "sweep", *grid], root, env)
        assert f"sweep: 12 trials ({kept} already in" in done.stdout
        assert len(Journal(journal).done()) == 12
        runs = [r for r in stored_runs(env["MLFLOW_TRACKING_URI"]) if "adaline.sweep" in r.data.tags]
        children = [r.data.tags["adaline.trial"] for r in runs if r.data.tags.get("mlflow.parentRunId")]
        assert len(children) == len(set(children)) == 24
    finally:
        for node in (worker, head):
            if node.process.poll() is None:
                node.kill()

"""One run per checkout: a second run refuses at once naming the first (or waits with --wait), and a dead
run's snapshot is put back or discarded by the documented rule, its leftover processes stopped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from adaline_repro import processes
from adaline_repro.errors import EXIT_BUSY
from adaline_repro.repro import rollback, run_lock
from adaline_repro.repro.recovery import RecoveryFailed
from adaline_repro.repro.run_lock import CheckoutBusy
from adaline_repro.repro.run_record import RECORD

SRC = Path(__file__).resolve().parents[3] / "src"
HOLDER = """
import sys, time
from pathlib import Path
from adaline_repro.repro import run_lock
with run_lock.hold(Path(sys.argv[1]), "./pipeline repro --force", wait=False, say=print):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


@pytest.fixture
def repo(checkout, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # the embedded store, absent: MLflow not needed
    monkeypatch.delenv(processes.RUN_ENV, raising=False)
    return checkout


def _holder(root: Path, seconds: float) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(root), str(seconds)], env=env, stdout=subprocess.PIPE,
                            text=True)  # fmt: skip
    assert proc.stdout.readline().strip() == "held"
    return proc


def _dead(**fields) -> dict:
    """A record of a run whose process is gone (its PID now belongs to another process: this one)."""
    gone = processes.ProcessId(os.getpid(), processes.current().started - 100)
    return {"command": "./pipeline repro --force", "process": str(gone), "host": os.uname().nodename,
            "since": "2026-11-30 12:00:00", **fields}  # fmt: skip


def _write(root: Path, record: dict) -> None:
    (root / RECORD).write_text(json.dumps(record))


def test_a_second_run_refuses_at_once_naming_the_first_and_touching_nothing(repo):
    holder = _holder(repo, 30)
    try:
        record_before = (repo / RECORD).read_text()
        started = time.monotonic()
        with pytest.raises(CheckoutBusy) as refused, run_lock.hold(repo, "./pipeline repro", wait=False, say=print):
            pytest.fail("the second run got the checkout")
        assert time.monotonic() - started < 2
        assert refused.value.exit_code == EXIT_BUSY == 7
        message = str(refused.value)
        assert message.startswith(f"this checkout is in use by ./pipeline repro --force (PID {holder.pid}, started ")
        assert "\n" not in message
        assert (repo / RECORD).read_text() == record_before
        assert rollback.strays(repo) == []
    finally:
        holder.kill()
        holder.wait()


def test_with_wait_a_second_run_queues_behind_the_first(repo):
    holder = _holder(repo, 1.5)
    said = []
    with run_lock.hold(repo, "./pipeline repro", wait=True, say=said.append) as run:
        assert holder.poll() == 0
        assert run.record.command == "./pipeline repro"
    assert said == [
        f"repro: waiting for ./pipeline repro --force (PID {holder.pid}, started {_since(said)}) to finish (--wait)"
    ]
    assert not (repo / RECORD).exists()


def _since(said: list[str]) -> str:
    return said[0].split("started ", 1)[1].split(")", 1)[0]


def test_the_holder_passes_its_identity_to_the_processes_it_starts_and_clears_its_record(repo):
    with run_lock.hold(repo, "./pipeline repro", wait=False, say=print) as run:
        child = subprocess.run([sys.executable, "-c", f"import os; print(os.environ['{processes.RUN_ENV}'])"],
                               capture_output=True, text=True, check=True)  # fmt: skip
        assert child.stdout.strip() == run.record.process == str(processes.current())
    assert processes.RUN_ENV not in os.environ
    assert not (repo / RECORD).exists()


@pytest.mark.parametrize(
    ("state", "content", "line"),
    [
        ("restore", "before\n", "stopped part-way: outputs and dvc.lock are as they were before it"),
        ("keep", "the new results\n", "stopped after its stages had finished: its results are kept"),
    ],
)
def test_a_dead_runs_snapshot_is_put_back_unless_its_stages_had_finished(repo, state, content, line):
    snapshot = rollback.take(repo)
    (repo / "models/manual.json").write_text("the new results\n")
    _write(repo, _dead(snapshot=str(snapshot.folder.relative_to(repo)), state=state))
    said = []
    with run_lock.hold(repo, "./pipeline repro", wait=False, say=said.append):
        assert (repo / "models/manual.json").read_text() == content
    pid = os.getpid()
    assert said == [
        f"repro: the previous run, ./pipeline repro --force (PID {pid}, started 2026-11-30 12:00:00), {line}"
    ]
    assert rollback.strays(repo) == []


def test_a_run_killed_while_copying_changed_nothing_and_its_partial_copies_go(repo):
    partial = rollback.take(repo)
    (partial.folder / "manifest.json").unlink()
    _write(repo, _dead())
    said = []
    with run_lock.hold(repo, "./pipeline repro", wait=False, say=said.append):
        assert rollback.strays(repo) == []
    assert said[0].endswith("stopped before it changed anything")
    assert (repo / "models/manual.json").read_text() == "before\n"


def test_a_dvc_command_that_keeps_no_copies_is_reported_as_such(repo):
    _write(repo, _dead(command="./pipeline dvc exp run", rollback=False))
    said = []
    with run_lock.hold(repo, "./pipeline repro", wait=False, say=said.append):
        pass
    assert said[0].endswith(
        "stopped part-way; it keeps no copies to put back: ./pipeline repro redoes what it left unfinished"
    )


def test_a_snapshot_left_by_a_failed_restore_is_put_back_even_by_the_same_process(repo):
    snapshot = rollback.take(repo)
    (repo / "models/manual.json").unlink()
    _write(repo, {**_dead(snapshot=str(snapshot.folder.relative_to(repo))), "process": str(processes.current()),
                  "left": True})  # fmt: skip
    said = []
    with run_lock.hold(repo, "./pipeline repro", wait=False, say=said.append):
        assert (repo / "models/manual.json").read_text() == "before\n"
    assert "could not put its outputs back: outputs and dvc.lock are as they were before it" in said[0]


def test_a_snapshot_that_still_cannot_be_put_back_stops_the_run_and_stays(repo):
    snapshot = rollback.take(repo)
    (repo / "models/manual.json").unlink()
    (repo / "models").rmdir()
    (repo / "models").write_text("a file where the folder was\n")
    record = _dead(snapshot=str(snapshot.folder.relative_to(repo)))
    _write(repo, record)
    with (
        pytest.raises(RecoveryFailed, match=r"still cannot be put back: models/manual.json \(File exists\)"),
        run_lock.hold(repo, "./pipeline repro", wait=False, say=print),
    ):
        pytest.fail("ran although the dead run's outputs are not back")
    assert json.loads((repo / RECORD).read_text()) == record
    assert rollback.load(repo, snapshot.folder) == snapshot


def test_a_live_run_whose_lock_file_was_removed_still_holds_the_checkout(repo):
    _write(repo, {**_dead(), "process": str(processes.current())})
    with (
        pytest.raises(CheckoutBusy, match=rf"in use by \./pipeline repro --force \(PID {os.getpid()},"),
        run_lock.hold(repo, "./pipeline repro", wait=False, say=print),
    ):
        pytest.fail("took the checkout of a running process")


def test_the_dead_runs_leftover_processes_are_stopped_before_its_snapshot_is_put_back(repo):
    snapshot = rollback.take(repo)
    record = _dead(snapshot=str(snapshot.folder.relative_to(repo)))
    # A stage that outlived its killed parent: it would write its output after the restore.
    late_write = "import time, pathlib; time.sleep(1); pathlib.Path('models/manual.json').write_text('x')"
    stage = subprocess.Popen(
        [sys.executable, "-c", late_write], cwd=repo, env={**os.environ, processes.RUN_ENV: record["process"]}
    )
    _write(repo, record)
    with run_lock.hold(repo, "./pipeline repro", wait=False, say=print):
        assert processes.start_time(stage.pid) is None  # stopped (and reaped) before its 1 s was up
    stage.wait()
    time.sleep(1.5)
    assert (repo / "models/manual.json").read_text() == "before\n"


def test_an_unreadable_dvc_rwlock_is_removed_and_said(repo):
    """A full disk while DVC rewrote its rwlock in place leaves it empty, and every DVC command would fail on
    it. (What real DVC writes there, and the cleaning of dead processes' entries: tests/e2e/test_dvc_internals.py.)"""
    rwlock = repo / ".dvc/tmp/rwlock"
    rwlock.write_text("")
    _write(repo, _dead())
    said = []
    with run_lock.hold(repo, "./pipeline repro", wait=False, say=said.append):
        pass
    assert not rwlock.exists()
    assert (
        said[1]
        == "repro: removed DVC's unreadable .dvc/tmp/rwlock (left half-written by a run that stopped on a full disk)"
    )

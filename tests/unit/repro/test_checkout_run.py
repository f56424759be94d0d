"""One run per checkout, kept or put back: a second run refuses at once naming the first (or waits with
--wait); a snapshot is kept, put back, or put back on the way out when neither was said; a dead run's
snapshot is put back or discarded by the documented rule, its leftover processes stopped."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from adaline_repro.core import processes, run_env
from adaline_repro.core.errors import EXIT_BUSY
from adaline_repro.repro import snapshot as copies
from adaline_repro.repro.checkout_run import PUT_BACK, RECORD, CheckoutBusy, CheckoutRun, RecoveryFailed

SRC = Path(__file__).resolve().parents[3] / "src"
HOLDER = """
import sys, time
from pathlib import Path
from adaline_repro.repro.checkout_run import CheckoutRun
with CheckoutRun(Path(sys.argv[1]), "./pipeline repro --force", say=print):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


@pytest.fixture
def repo(checkout, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # the embedded store, absent: MLflow not needed
    monkeypatch.delenv(run_env.RUN, raising=False)
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
        with pytest.raises(CheckoutBusy) as refused, CheckoutRun(repo, "./pipeline repro", wait=False, say=print):
            pytest.fail("the second run got the checkout")
        assert time.monotonic() - started < 2
        assert refused.value.exit_code == EXIT_BUSY == 7
        message = str(refused.value)
        assert message.startswith(f"this checkout is in use by ./pipeline repro --force (PID {holder.pid}, started ")
        assert "\n" not in message
        assert (repo / RECORD).read_text() == record_before
        assert copies.strays(repo) == []
    finally:
        holder.kill()
        holder.wait()


def test_with_wait_a_second_run_queues_behind_the_first(repo):
    holder = _holder(repo, 1.5)
    said = []
    with CheckoutRun(repo, "./pipeline repro", wait=True, say=said.append) as run:
        assert holder.poll() == 0
        assert run.record.command == "./pipeline repro"
    assert said == [
        f"repro: waiting for ./pipeline repro --force (PID {holder.pid}, started {_since(said)}) to finish (--wait)"
    ]
    assert not (repo / RECORD).exists()


def _since(said: list[str]) -> str:
    return said[0].split("started ", 1)[1].split(")", 1)[0]


def test_the_holder_passes_its_identity_to_the_processes_it_starts_and_clears_its_record(repo):
    with CheckoutRun(repo, "./pipeline repro", wait=False, say=print) as run:
        child = subprocess.run([sys.executable, "-c", f"import os; print(os.environ['{run_env.RUN}'])"],
                               capture_output=True, text=True, check=True)  # fmt: skip
        assert child.stdout.strip() == run.record.process == str(processes.current())
    assert run_env.RUN not in os.environ
    assert not (repo / RECORD).exists()


@pytest.mark.parametrize(
    ("state", "content", "line"),
    [
        ("restore", "before\n", "stopped part-way: outputs and dvc.lock are as they were before it"),
        ("keep", "the new results\n", "stopped after its stages had finished: its results are kept"),
    ],
)
def test_a_dead_runs_snapshot_is_put_back_unless_its_stages_had_finished(repo, state, content, line):
    snapshot = copies.take(repo)
    (repo / "models/manual.json").write_text("the new results\n")
    _write(repo, _dead(snapshot=str(snapshot.folder.relative_to(repo)), state=state))
    said = []
    with CheckoutRun(repo, "./pipeline repro", wait=False, say=said.append):
        assert (repo / "models/manual.json").read_text() == content
    pid = os.getpid()
    assert said == [
        f"repro: the previous run, ./pipeline repro --force (PID {pid}, started 2026-11-30 12:00:00), {line}"
    ]
    assert copies.strays(repo) == []


def test_a_run_killed_while_copying_changed_nothing_and_its_partial_copies_go(repo):
    partial = copies.take(repo)
    (partial.folder / "manifest.json").unlink()
    _write(repo, _dead())
    said = []
    with CheckoutRun(repo, "./pipeline repro", wait=False, say=said.append):
        assert copies.strays(repo) == []
    assert said[0].endswith("stopped before it changed anything")
    assert (repo / "models/manual.json").read_text() == "before\n"


def test_a_dvc_command_that_keeps_no_copies_is_reported_as_such(repo):
    _write(repo, _dead(command="./pipeline dvc exp run", puts_back=False))
    said = []
    with CheckoutRun(repo, "./pipeline repro", wait=False, say=said.append):
        pass
    assert said[0].endswith(
        "stopped part-way; it keeps no copies to put back: ./pipeline repro redoes what it left unfinished"
    )


def test_a_snapshot_left_by_a_failed_restore_is_put_back_even_by_the_same_process(repo):
    snapshot = copies.take(repo)
    (repo / "models/manual.json").unlink()
    _write(repo, {**_dead(snapshot=str(snapshot.folder.relative_to(repo))), "process": str(processes.current()),
                  "left": True})  # fmt: skip
    said = []
    with CheckoutRun(repo, "./pipeline repro", wait=False, say=said.append):
        assert (repo / "models/manual.json").read_text() == "before\n"
    assert "could not put its outputs back: outputs and dvc.lock are as they were before it" in said[0]


def test_a_snapshot_that_still_cannot_be_put_back_stops_the_run_and_stays(repo):
    snapshot = copies.take(repo)
    (repo / "models/manual.json").unlink()
    (repo / "models").rmdir()
    (repo / "models").write_text("a file where the folder was\n")
    record = _dead(snapshot=str(snapshot.folder.relative_to(repo)))
    _write(repo, record)
    with (
        pytest.raises(RecoveryFailed, match=r"still cannot be put back: models/manual.json \(File exists\)"),
        CheckoutRun(repo, "./pipeline repro", wait=False, say=print),
    ):
        pytest.fail("ran although the dead run's outputs are not back")
    assert json.loads((repo / RECORD).read_text()) == record
    assert copies.load(repo, snapshot.folder) == snapshot


def test_a_live_run_whose_lock_file_was_removed_still_holds_the_checkout(repo):
    _write(repo, {**_dead(), "process": str(processes.current())})
    with (
        pytest.raises(CheckoutBusy, match=rf"in use by \./pipeline repro --force \(PID {os.getpid()},"),
        CheckoutRun(repo, "./pipeline repro", wait=False, say=print),
    ):
        pytest.fail("took the checkout of a running process")


def test_the_dead_runs_leftover_processes_are_stopped_before_its_snapshot_is_put_back(repo):
    snapshot = copies.take(repo)
    record = _dead(snapshot=str(snapshot.folder.relative_to(repo)))
    # A stage that outlived its killed parent: it would write its output after the restore.
    late_write = "import time, pathlib; time.sleep(1); pathlib.Path('models/manual.json').write_text('x')"
    stage = subprocess.Popen(
        [sys.executable, "-c", late_write], cwd=repo, env={**os.environ, run_env.RUN: record["process"]}
    )
    _write(repo, record)
    with CheckoutRun(repo, "./pipeline repro", wait=False, say=print):
        assert processes.start_time(stage.pid) is None  # stopped (and reaped) before its 1 s was up
    stage.wait()
    time.sleep(1.5)
    assert (repo / "models/manual.json").read_text() == "before\n"


def test_an_unreadable_dvc_rwlock_is_removed_and_said(repo):
    """A full disk while DVC rewrote its rwlock in place leaves it empty, and every DVC command would fail on
    it. (What breaks without it, with real DVC: tests/e2e/test_dvc_support.py.)"""
    rwlock = repo / ".dvc/tmp/rwlock"
    rwlock.write_text("")
    _write(repo, _dead())
    said = []
    with CheckoutRun(repo, "./pipeline repro", wait=False, say=said.append):
        pass
    assert not rwlock.exists()
    assert (
        said[1]
        == "repro: removed DVC's unreadable .dvc/tmp/rwlock (left half-written by a run that stopped on a full disk)"
    )


def test_a_snapshot_kept_stays_and_one_put_back_restores_the_outputs(repo):
    """keep(): the results of the run stay and the copies go; put_back(): every output as it was, and the
    line saying so."""
    said = []
    with CheckoutRun(repo, "./pipeline repro", say=said.append) as run:
        run.snapshot()
        (repo / "models/manual.json").write_text("kept\n")
        run.keep()
    assert (repo / "models/manual.json").read_text() == "kept\n"
    with CheckoutRun(repo, "./pipeline repro", say=said.append) as run:
        run.snapshot()
        (repo / "models/manual.json").write_text("put back\n")
        (repo / "metrics/extra.json").write_text("{}\n")
        run.put_back()
    assert (repo / "models/manual.json").read_text() == "kept\n"
    assert not (repo / "metrics/extra.json").exists()
    assert said == [f"repro: {PUT_BACK}"]
    assert copies.strays(repo) == []
    assert not (repo / RECORD).exists()


@pytest.mark.parametrize("raised", [None, KeyboardInterrupt, SystemExit])
def test_a_snapshot_neither_kept_nor_put_back_is_put_back_on_the_way_out(repo, raised):
    """Ctrl-C, SIGTERM (which unwinds as SystemExit) or a caller that decided nothing: the outputs come back."""
    said = []
    try:
        with CheckoutRun(repo, "./pipeline repro", say=said.append) as run:
            run.snapshot()
            (repo / "models/manual.json").write_text("half a run\n")
            if raised:
                raise raised
    except (KeyboardInterrupt, SystemExit):
        pass
    assert (repo / "models/manual.json").read_text() == "before\n"
    assert said == [f"repro: {PUT_BACK}"]
    assert not (repo / RECORD).exists()


def test_the_record_says_restore_while_the_stages_run_and_keep_after(repo):
    """What a later run would do with the snapshot if this one died now (the recovery rule's two states)."""
    with CheckoutRun(repo, "./pipeline repro") as run:
        assert json.loads((repo / RECORD).read_text())["snapshot"] is None
        run.snapshot(extra=("params.yaml",))
        written = json.loads((repo / RECORD).read_text())
        assert (written["state"], written["snapshot"]) == ("restore", run.record.snapshot)
        run.keep()
        assert json.loads((repo / RECORD).read_text())["state"] == "keep"


def test_a_put_back_that_fails_is_said_once_and_left_to_the_next_run(repo):
    """A full disk (here: a file where a folder must go back) keeps a file from coming back: one line says
    what is missing, the copies stay, and the record tells the next run to put them back first."""
    said = []
    with CheckoutRun(repo, "./pipeline repro", say=said.append) as run:
        run.snapshot()
        shutil.rmtree(repo / "models")
        (repo / "models").write_text("a file where the folder was\n")
        run.put_back()
    assert len(said) == 1
    assert said[0].startswith("repro: could not put back models/manual.json (File exists)")
    left = json.loads((repo / RECORD).read_text())
    assert (left["left"], left["state"]) == (True, "restore")
    assert copies.load(repo, repo / left["snapshot"]) is not None

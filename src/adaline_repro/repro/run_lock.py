"""One run per checkout.

`./pipeline repro`, `./pipeline check --update` and the `./pipeline dvc` commands that write the workspace
hold this lock for their whole run, taken before they look at or copy anything. A second one started
meanwhile refuses at once, naming the running command and its PID (or, with --wait, queues behind it).
Queued and --temp experiments run in copies of the checkout, each with its own .dvc/tmp: they never meet it.

The lock is an flock on LOCK (the kernel drops it when its process dies, even on `kill -9`); the record
(run_record.py) says who holds it: command, PID and start time, and the rollback snapshot with what to do
with it. A record found with the lock free is a dead run's: recovery.py resolves it before this run starts.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from adaline_repro import dvc_internals, processes
from adaline_repro.errors import EXIT_BUSY, ReproError
from adaline_repro.files import WriteError
from adaline_repro.processes import ProcessId
from adaline_repro.repro import recovery
from adaline_repro.repro.run_record import RECORD, Record, read_record, write_record
from adaline_repro.workspace import DVC_TMP

if TYPE_CHECKING:
    from adaline_repro.repro.rollback import Snapshot

LOCK = DVC_TMP / "adaline-run.lock"
_WAIT_POLL_S = 0.2
ROLLED_BACK = "outputs and dvc.lock are as they were before this run"


class CheckoutBusy(ReproError):
    """Another run holds this checkout."""

    exit_code = EXIT_BUSY


class Run:
    """The holder's handle: it tells the record about the snapshot, so a later run knows what to do with it."""

    def __init__(self, root: Path, record: Record, say: Callable[[str], None]) -> None:
        self.root = root
        self.record = record
        self.say = say  # a line of this command's (`repro: ...`)
        self.snapshot: Snapshot | None = None  # taken and neither kept nor put back yet

    def took(self, snapshot: Snapshot) -> None:
        """The snapshot is complete: if this run dies from now on, the next one puts it back."""
        self._write(snapshot=str(snapshot.folder.relative_to(self.root)), state="restore")
        self.snapshot = snapshot

    def keep(self) -> None:
        """The results stay: the copies go (if this run dies meanwhile, the next one removes them)."""
        from adaline_repro.repro import rollback

        assert self.snapshot is not None
        self._write(state="keep")
        rollback.discard(self.snapshot)
        self.snapshot = None

    def put_back(self) -> None:
        """Restore the snapshot and say so; what a full disk keeps from being put back is said and left to
        the next run (the record keeps the snapshot)."""
        from adaline_repro.repro import rollback

        assert self.snapshot is not None
        failed = rollback.restore(self.snapshot)
        if failed:
            self.say(f"could not put back {rollback.summary(failed)}: missing, never half-written; the copies are "
                     f"kept in {self.record.snapshot}, and the next ./pipeline repro puts them back first")  # fmt: skip
            return
        self.snapshot = None
        self.say(ROLLED_BACK)

    def _write(self, **changes: object) -> None:
        self.record = replace(self.record, **changes)
        write_record(self.root, self.record)


@contextlib.contextmanager
def hold(root: Path, command: str, *, wait: bool, say: Callable[[str], None], rollback: bool = True) -> Iterator[Run]:
    """Hold the checkout for `command`, or raise CheckoutBusy; recover a dead run's leftovers first."""
    prefix = command.split()[1] if command.startswith("./pipeline ") else "pipeline"

    def say_as_command(line: str) -> None:
        say(f"{prefix}: {line}")

    (root / LOCK).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _acquire(root, fd, wait, say_as_command)
        previous = read_record(root)
        me = processes.current()
        if previous is not None and not previous.left and _alive(previous):
            # It runs, yet the lock was free: the lock file was removed under it. Still its checkout.
            raise CheckoutBusy(_busy_message(previous))
        bare = dvc_internals.bare_dvc_holder(root)  # a `dvc` started without ./pipeline holds no lock of ours
        if bare is not None:
            raise CheckoutBusy(f"this checkout is in use by {bare}; run again when it has finished")
        if previous is not None:
            recovery.recover(root, previous, say_as_command)
        else:
            recovery.remove_strays(root, None)
        if dvc_internals.clean_rwlock(root):
            say_as_command(f"removed DVC's unreadable {dvc_internals.RWLOCK} (left half-written by a run that "
                           "stopped on a full disk)")  # fmt: skip
        run = Run(root, Record(command, str(me), os.uname().nodename, time.strftime("%Y-%m-%d %H:%M:%S"),
                               rollback=rollback), say_as_command)  # fmt: skip
        write_record(root, run.record)
        outer = os.environ.get(processes.RUN_ENV)
        os.environ[processes.RUN_ENV] = str(me)  # inherited by every process this run starts
        try:
            yield run
        finally:
            if outer is None:
                os.environ.pop(processes.RUN_ENV, None)
            else:
                os.environ[processes.RUN_ENV] = outer
            if run.snapshot is not None:  # the next run puts the snapshot back (recovery.py's rule)
                with contextlib.suppress(WriteError):  # a full disk: the record's "restore" and dead PID say it
                    run._write(left=True)
            else:
                (root / RECORD).unlink(missing_ok=True)
    finally:
        os.close(fd)  # releases the flock


def _acquire(root: Path, fd: int, wait: bool, say: Callable[[str], None]) -> None:
    waiting = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            holder = _holder(root)
            if not wait:
                raise CheckoutBusy(_busy_message(holder)) from None
            if not waiting:
                say(f"waiting for {holder.who() if holder else 'another run'} to finish (--wait)")
                waiting = True
            time.sleep(_WAIT_POLL_S)


def _holder(root: Path) -> Record | None:
    """The lock holder's record; it writes it right after taking the lock, so a missing one is retried."""
    for _ in range(20):
        record = read_record(root)
        if record is not None:
            return record
        time.sleep(0.05)
    return None


def _busy_message(holder: Record | None) -> str:
    who = holder.who() if holder else "another run (PID unknown)"
    hint = "run again when it has finished, or add --wait to queue behind it"
    if holder is not None and holder.host != os.uname().nodename:
        hint += f" (if it no longer runs on {holder.host}, remove {RECORD})"
    return f"this checkout is in use by {who}; {hint}"


def _alive(record: Record) -> bool:
    """Whether the recorded process still runs; one on another machine (a shared file system) cannot be
    checked from here and counts as running."""
    if record.host != os.uname().nodename:
        return True
    process = ProcessId.parse(record.process)
    return process is not None and processes.alive(process)

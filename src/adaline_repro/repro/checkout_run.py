"""One run per checkout, and a run that is kept or put back.

    with CheckoutRun(root, "./pipeline repro --force") as run:
        run.snapshot()   # every file DVC may change, copied aside (snapshot.py)
        ...              # DVC runs the stages
        run.keep()       # or run.put_back(); a snapshot neither kept nor put back is put back on the way out

`./pipeline repro`, `./pipeline check --update` and the `./pipeline dvc` commands that write the workspace
hold their checkout this way for their whole run, from before they look at or copy anything:

- The lock: an flock on LOCK, which the kernel drops when its process dies, even on `kill -9`. A second run
  refuses at once with exit 7, naming the first (with --wait it queues behind it); so does any run while a
  `dvc` started without ./pipeline works in the checkout (seen in DVC's own notes: dvc_support/internals.py).
- The record (RECORD, written atomically): who holds the checkout (command, PID and start time, host) and
  what to do with its snapshot if it dies: "restore" while the stages run, "keep" once they finished.
- Recovery: a record found with the lock free is a dead run's (killed, or it could not put its snapshot
  back on a full disk). Before this run starts, the dead run's leftover stage processes are stopped, and its
  snapshot is resolved by one rule: none yet: nothing had changed; "restore": put back; "keep": the results
  stay; a command that takes no snapshot: nothing to put back (DVC's next run redoes what it left). Then the
  MLflow runs its processes left RUNNING are marked KILLED.

Queued and --temp experiments run in copies of the checkout, each with its own .dvc/tmp: they never meet it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from adaline_repro.core import processes
from adaline_repro.core.checkout import DVC_TMP
from adaline_repro.core.errors import EXIT_BUSY, ReproError, WriteError
from adaline_repro.core.files import atomic_write_text, json_text
from adaline_repro.core.processes import ProcessId
from adaline_repro.core.run_env import RUN
from adaline_repro.dvc_support import internals
from adaline_repro.repro import snapshot as copies

LOCK = DVC_TMP / "adaline-run.lock"
RECORD = DVC_TMP / "adaline-run.json"
PUT_BACK = "outputs and dvc.lock are as they were before this run"
_WAIT_POLL_S = 0.2


class CheckoutBusy(ReproError):
    """Another run holds this checkout."""

    exit_code = EXIT_BUSY


class RecoveryFailed(WriteError):
    """A dead run's snapshot could not be put back (the disk is still full): nothing was run."""


@dataclass(frozen=True)
class Record:
    """Who holds the checkout, and what to do with its snapshot if it dies."""

    command: str
    process: str  # ProcessId as text
    host: str
    since: str  # local time the run started
    snapshot: str | None = None  # folder relative to the root, once complete
    state: str = "restore"  # what to do with the snapshot if this run dies: "restore" or "keep"
    left: bool = False  # the run ended but left its snapshot to the next run (it could not put it back)
    puts_back: bool = True  # whether this command takes a snapshot at all

    def who(self) -> str:
        pid = ProcessId.parse(self.process)
        where = "" if self.host == os.uname().nodename else f" on {self.host}"
        return f"{self.command} (PID {pid.pid if pid else '?'}{where}, started {self.since})"


def warn(line: str) -> None:
    """A line on stderr, flushed at once (the run's messages, between DVC's own)."""
    print(line, file=sys.stderr, flush=True)


class CheckoutRun:
    """Holds the checkout for `command` while its block runs; see the module docstring."""

    def __init__(self, root: Path, command: str, *, wait: bool = False, puts_back: bool = True,
                 say: Callable[[str], None] = warn) -> None:  # fmt: skip
        self.root, self.command, self.wait, self.puts_back = root, command, wait, puts_back
        prefix = command.split()[1] if command.startswith("./pipeline ") else "pipeline"
        self.say = lambda line: say(f"{prefix}: {line}")  # a line of this command's (`repro: ...`)
        self.record: Record | None = None
        self._copies: copies.Snapshot | None = None  # taken and neither kept nor put back yet
        self._left = False  # putting it back failed (a full disk): left to the next run
        self._fd: int | None = None
        self._outer_run: str | None = None

    def __enter__(self) -> CheckoutRun:
        (self.root / LOCK).parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.root / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            self._acquire()
            self._resolve_the_previous_run()
            me = processes.current()
            self._write(Record(self.command, str(me), os.uname().nodename, time.strftime("%Y-%m-%d %H:%M:%S"),
                               puts_back=self.puts_back))  # fmt: skip
        except BaseException:
            os.close(self._fd)  # releases the flock
            raise
        self._outer_run = os.environ.get(RUN)
        os.environ[RUN] = str(me)  # inherited by every process this run starts
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._outer_run is None:
                os.environ.pop(RUN, None)
            else:
                os.environ[RUN] = self._outer_run
            if self._copies is not None and not self._left:
                self.put_back()
            if self._copies is not None:  # could not be put back: the next run does (the rule's "restore")
                with contextlib.suppress(WriteError):  # a full disk: the record's state and dead PID say it
                    self._write(replace(self.record, left=True))
            else:
                (self.root / RECORD).unlink(missing_ok=True)
        finally:
            os.close(self._fd)

    # --- the snapshot ----------------------------------------------------------------------------------

    def snapshot(self, extra: tuple[str, ...] = ()) -> None:
        """Copy every output dvc.lock names, dvc.lock and `extra` aside: if this run dies from now on, the
        next one puts them back. A WriteError (nothing kept, nothing changed) if the copies do not fit."""
        taken = copies.take(self.root, extra)
        self._write(replace(self.record, snapshot=str(taken.folder.relative_to(self.root)), state="restore"))
        self._copies = taken

    def keep(self) -> None:
        """The results stay: the copies go (if this run dies meanwhile, the next one removes them)."""
        assert self._copies is not None
        self._write(replace(self.record, state="keep"))
        copies.discard(self._copies)
        self._copies = None

    def put_back(self) -> None:
        """Restore the snapshot and say so; what a full disk keeps from being put back is said and left to
        the next run (the record keeps the snapshot)."""
        assert self._copies is not None
        failed = copies.restore(self._copies)
        if failed:
            self._left = True
            self.say(f"could not put back {copies.summary(failed)}: missing, never half-written; the copies are "
                     f"kept in {self.record.snapshot}, and the next ./pipeline repro puts them back first")  # fmt: skip
            return
        self._copies = None
        self.say(PUT_BACK)

    # --- taking the checkout --------------------------------------------------------------------------

    def _acquire(self) -> None:
        waiting = False
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                holder = self._holder()
                if not self.wait:
                    raise CheckoutBusy(_busy_message(holder)) from None
                if not waiting:
                    self.say(f"waiting for {holder.who() if holder else 'another run'} to finish (--wait)")
                    waiting = True
                time.sleep(_WAIT_POLL_S)

    def _holder(self) -> Record | None:
        """The lock holder's record; it writes it right after taking the lock, so a missing one is retried."""
        for _ in range(20):
            record = _read_record(self.root)
            if record is not None:
                return record
            time.sleep(0.05)
        return None

    def _resolve_the_previous_run(self) -> None:
        previous = _read_record(self.root)
        if previous is not None and not previous.left and _alive(previous):
            # It runs, yet the lock was free: the lock file was removed under it. Still its checkout.
            raise CheckoutBusy(_busy_message(previous))
        bare = internals.bare_dvc_holder(self.root)  # a `dvc` started without ./pipeline holds no lock of ours
        if bare is not None:
            raise CheckoutBusy(f"this checkout is in use by {bare}; run again when it has finished")
        if previous is not None:
            self._recover(previous)
        else:
            _remove_strays(self.root, None)
        if internals.remove_unreadable_rwlock(self.root):
            self.say(f"removed DVC's unreadable {internals.RWLOCK} (left half-written by a run that stopped on a "
                     "full disk)")  # fmt: skip

    def _recover(self, dead: Record) -> None:
        """Resolve a dead run's snapshot by the rule in the module docstring; one line says what was done."""
        process = ProcessId.parse(dead.process)
        if process is not None and not dead.left:
            leftovers = processes.started_by(process)
            if leftovers:
                processes.stop(leftovers)
        # A dead PID: killed, or it ended on a disk too full even to note that it left its snapshot.
        what = "could not put its outputs back" if dead.left else "stopped part-way"
        taken = copies.load(self.root, self.root / dead.snapshot) if dead.snapshot else None
        _remove_strays(self.root, taken.folder if taken else None)
        if not dead.puts_back:
            self.say(f"the previous run, {dead.who()}, {what}; it keeps no copies to put back: ./pipeline repro "
                     "redoes what it left unfinished")  # fmt: skip
        elif taken is None:
            self.say(f"the previous run, {dead.who()}, stopped before it changed anything")
        elif dead.state == "keep":
            copies.discard(taken)
            self.say(f"the previous run, {dead.who()}, stopped after its stages had finished: its results are kept")
        else:
            failed = copies.restore(taken)
            if failed:
                raise RecoveryFailed(
                    f"the previous run, {dead.who()}, {what}, and its outputs still cannot be put back: "
                    f"{copies.summary(failed)}; the copies are in {dead.snapshot}; free space and run again"
                )
            self.say(f"the previous run, {dead.who()}, {what}: outputs and dvc.lock are as they were before it")
        (self.root / RECORD).unlink(missing_ok=True)
        from adaline_repro.tracking.store import mark_killed  # MLflow: seconds, paid only after a run died

        mark_killed(self.root, self.say)

    def _write(self, record: Record) -> None:
        try:
            atomic_write_text(self.root / RECORD, json_text(asdict(record)))
        except WriteError as exc:  # named as the user sees it, from the checkout
            message = str(exc).removeprefix(str(self.root / RECORD))
            raise WriteError(f"{RECORD}{message}; nothing was run or changed") from None
        self.record = record


def _read_record(root: Path) -> Record | None:
    try:
        return Record(**json.loads((root / RECORD).read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError):
        return Record(command="an earlier run (its record is unreadable)", process="", host="", since="?",
                      left=True)  # fmt: skip


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


def _remove_strays(root: Path, keep: Path | None) -> None:
    """Snapshot folders no record vouches for (a run killed while it copied): removed."""
    for folder in copies.strays(root, keep):
        shutil.rmtree(folder, ignore_errors=True)

"""One run per checkout, and the recovery of a run that was killed.

`./pipeline repro`, `./pipeline check --update` and the `./pipeline dvc` commands that write the workspace
hold this lock for their whole run, taken before they look at or copy anything. A second one started
meanwhile refuses at once, naming the running command and its PID (or, with --wait, queues behind it).
Queued and --temp experiments run in copies of the checkout, each with its own .dvc/tmp: they never meet it.

The lock is an flock on LOCK (the kernel drops it when its process dies, even on `kill -9`); RECORD says
who holds it: command, PID and start time, and the rollback snapshot with what to do with it. A record whose
lock is free belongs to a run that is gone: killed (its PID no longer runs that process), or one that could
not put its snapshot back (a full disk) and left it for the next run. The next run resolves it by one rule:

- no snapshot yet: the run had not started DVC, nothing changed; its partial copies are removed;
- snapshot, stages not finished (state "restore"): the outputs and dvc.lock are put back from it;
- snapshot, stages finished (state "keep"): its results stay, the copies are removed;
- a command that takes no snapshot (`./pipeline dvc repro`): nothing to put back; DVC's next run redoes
  whatever that run left unfinished.

Before that, the dead run's leftover processes (a stage keeps running when only its parent is killed) are
stopped, and afterwards the MLflow runs its processes left RUNNING are marked KILLED.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from adaline_repro import processes
from adaline_repro.errors import EXIT_BUSY, ReproError
from adaline_repro.files import WriteError, atomic_write_text, json_text
from adaline_repro.processes import ProcessId
from adaline_repro.workspace import DVC_TMP

if TYPE_CHECKING:
    from adaline_repro.repro.rollback import Snapshot

LOCK = DVC_TMP / "adaline-run.lock"
RECORD = DVC_TMP / "adaline-run.json"
# Where DVC itself notes a workspace `dvc exp run` (its PID, for the whole run) and the paths its running
# stage reads and writes: what a bare `dvc`, which does not take this lock, leaves to be seen.
_DVC_WORKSPACE_EXP = DVC_TMP / "exps" / "run" / "workspace" / "workspace.json"
_DVC_RWLOCK = DVC_TMP / "rwlock"
_WAIT_POLL_S = 0.2
ROLLED_BACK = "outputs and dvc.lock are as they were before this run"


class CheckoutBusy(ReproError):
    """Another run holds this checkout."""

    exit_code = EXIT_BUSY


class RecoveryFailed(WriteError):
    """A dead run's snapshot could not be put back (the disk is still full): nothing was run."""


@dataclass(frozen=True)
class Record:
    command: str
    process: str  # ProcessId as text
    host: str
    since: str  # local time the run started
    snapshot: str | None = None  # folder relative to the root, once complete
    state: str = "restore"  # what to do with the snapshot if this run dies: "restore" or "keep"
    left: bool = False  # the run ended but left its snapshot to the next run (it could not put it back)
    rollback: bool = True  # whether this command takes a snapshot at all

    def who(self) -> str:
        pid = ProcessId.parse(self.process)
        where = "" if self.host == os.uname().nodename else f" on {self.host}"
        return f"{self.command} (PID {pid.pid if pid else '?'}{where}, started {self.since})"


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
        _write_record(self.root, self.record)


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
        _refuse_if_bare_dvc_runs(root)
        if previous is not None:
            recover(root, previous, say_as_command)
        else:
            _remove_strays(root, None)
        _clean_dvc_rwlock(root, say_as_command)
        run = Run(root, Record(command, str(me), os.uname().nodename, time.strftime("%Y-%m-%d %H:%M:%S"),
                               rollback=rollback), say_as_command)  # fmt: skip
        _write_record(root, run.record)
        outer = os.environ.get(processes.RUN_ENV)
        os.environ[processes.RUN_ENV] = str(me)  # inherited by every process this run starts
        try:
            yield run
        finally:
            if outer is None:
                os.environ.pop(processes.RUN_ENV, None)
            else:
                os.environ[processes.RUN_ENV] = outer
            if run.snapshot is not None:  # the next run puts the snapshot back (rule above)
                with contextlib.suppress(WriteError):  # a full disk: the record's "restore" and dead PID say it
                    run._write(left=True)
            else:
                (root / RECORD).unlink(missing_ok=True)
    finally:
        os.close(fd)  # releases the flock


def read_record(root: Path) -> Record | None:
    try:
        return Record(**json.loads((root / RECORD).read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError):
        return Record(command="an earlier run (its record is unreadable)", process="", host="", since="?",
                      left=True)  # fmt: skip


def recover(root: Path, dead: Record, say: Callable[[str], None]) -> None:
    """Resolve a dead run's snapshot by the rule in the module docstring; one line says what was done."""
    from adaline_repro.repro import rollback

    process = ProcessId.parse(dead.process)
    if process is not None and not dead.left:
        leftovers = processes.started_by(process)
        if leftovers:
            processes.stop(leftovers)
    # A dead PID: killed, or it ended on a full disk too full even to note that it left its snapshot.
    what = "could not put its outputs back" if dead.left else "stopped part-way"
    snapshot = rollback.load(root, root / dead.snapshot) if dead.snapshot else None
    _remove_strays(root, snapshot.folder if snapshot else None)
    if not dead.rollback:
        say(f"the previous run, {dead.who()}, {what}; it keeps no copies to put back: ./pipeline repro "
            "redoes what it left unfinished")  # fmt: skip
    elif snapshot is None:
        say(f"the previous run, {dead.who()}, stopped before it changed anything")
    elif dead.state == "keep":
        rollback.discard(snapshot)
        say(f"the previous run, {dead.who()}, stopped after its stages had finished: its results are kept")
    else:
        failed = rollback.restore(snapshot)
        if failed:
            raise RecoveryFailed(
                f"the previous run, {dead.who()}, {what}, and its outputs still cannot be put back: "
                f"{rollback.summary(failed)}; the copies are in {dead.snapshot}; free space and run again"
            )
        say(f"the previous run, {dead.who()}, {what}: outputs and dvc.lock are as they were before it")
    (root / RECORD).unlink(missing_ok=True)
    end_orphaned_runs(root, say)


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


def _write_record(root: Path, record: Record) -> None:
    try:
        atomic_write_text(root / RECORD, json_text(asdict(record)))
    except WriteError as exc:  # named as the user sees it, from the checkout
        raise WriteError(f"{RECORD}{str(exc).removeprefix(str(root / RECORD))}; nothing was run or changed") from None


def _refuse_if_bare_dvc_runs(root: Path) -> None:
    """A `dvc exp run` or `dvc repro` started without ./pipeline holds no lock of ours; DVC's notes show it."""
    holder = _bare_dvc_holder(root)
    if holder is not None:
        raise CheckoutBusy(f"this checkout is in use by {holder}; run again when it has finished")


def _bare_dvc_holder(root: Path) -> str | None:
    """A DVC process working in this checkout that did not come through ./pipeline. A PID counts only while
    it still runs the command DVC recorded for it: DVC leaves the entries of killed processes behind."""
    try:
        pid = int(json.loads((root / _DVC_WORKSPACE_EXP).read_text(encoding="utf-8"))["pid"])
        if _runs(pid, ["exp", "run"]):
            return f"dvc exp run (PID {pid})"
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        for info in json.loads((root / _DVC_RWLOCK).read_text(encoding="utf-8")).get("write", {}).values():
            args = str(info["cmd"]).split()[1:]
            if _runs(int(info["pid"]), args):
                return f"dvc {' '.join(args)} (PID {info['pid']})"
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    return None


def _runs(pid: int, args: list[str]) -> bool:
    """The process runs, with `args` in its command line (DVC records its own sys.argv)."""
    if processes.start_time(pid) is None:
        return False
    import psutil

    try:
        cmdline = psutil.Process(pid).cmdline()
    except psutil.Error:
        return False
    return " ".join(args) in " ".join(cmdline)


def _clean_dvc_rwlock(root: Path, say: Callable[[str], None]) -> None:
    """Drop the entries of dead processes from DVC's rwlock, under DVC's own guard for that file (DVC drops
    only those in its way, with a warning each, and keeps the rest for ever). DVC rewrites the file in
    place, so a full disk can leave it empty, and then every DVC command fails until it is removed: no DVC
    process can be using an unreadable one."""
    path = root / _DVC_RWLOCK
    if not path.exists():
        return

    def live(info: dict) -> bool:
        return processes.start_time(int(info["pid"])) is not None

    with open(path.with_name(path.name + ".lock"), "a") as guard:
        fcntl.flock(guard.fileno(), fcntl.LOCK_EX)
        try:
            lock = json.loads(path.read_text(encoding="utf-8"))
            writers = {p: info for p, info in lock.get("write", {}).items() if live(info)}
            readers = {p: [i for i in infos if live(i)] for p, infos in lock.get("read", {}).items()}
        except (OSError, ValueError, AttributeError, KeyError, TypeError):
            path.unlink(missing_ok=True)
            say(f"removed DVC's unreadable {_DVC_RWLOCK} (left half-written by a run that stopped on a full disk)")
            return
        cleaned = {"write": writers, "read": {p: infos for p, infos in readers.items() if infos}}
        cleaned = {k: v for k, v in cleaned.items() if v}
        if cleaned != lock:
            with contextlib.suppress(WriteError):  # a full disk: DVC drops what is in its way itself
                atomic_write_text(path, json.dumps(cleaned))


def _remove_strays(root: Path, keep: Path | None) -> None:
    import shutil

    from adaline_repro.repro import rollback

    for folder in rollback.strays(root, keep):
        shutil.rmtree(folder, ignore_errors=True)


def end_orphaned_runs(root: Path, say: Callable[[str], None]) -> None:
    """Mark KILLED the MLflow runs a dead process of this checkout left RUNNING (imports MLflow: seconds,
    paid only after a process died). A store that cannot be reached is said, not fatal: the track stage
    does the same whenever it logs."""
    from adaline_repro.repro.preflight import check_tracking_store
    from adaline_repro.workspace import embedded_db, repository_root, tracking_uri

    uri = tracking_uri(repository_root(root))
    db = embedded_db(uri)
    if db is not None and not db.exists():
        return
    try:
        check_tracking_store(uri)
        from adaline_repro import mlflow_store

        ended = mlflow_store.end_orphaned_runs(uri)
    except ReproError as exc:
        say(f"could not mark the MLflow runs of dead processes KILLED: {exc}")
        return
    if ended:
        say(f"marked {ended} MLflow run{'s' if ended != 1 else ''} KILLED that a dead process of this "
            "checkout had left RUNNING")  # fmt: skip

"""The one seam onto DVC's internals: every read of DVC's private files, and every look at what DVC reports
of its own failures, lives here. Checked against DVC 3.67.1 (requirements.lock pins it);
tests/e2e/test_dvc_support.py makes real DVC write each file and raise each failure read here, so an upgrade
that changes one fails a named test.

A stage's failure is never read from DVC: each stage records its own outcome (core/run_env.py). What is left:

- `.dvc/tmp/rwlock`: JSON `{"write": {path: {"pid", "cmd"}}, "read": {path: [{"pid", "cmd"}]}}`, the absolute
  paths each running DVC process holds, its command as `<dvc's __main__.py> repro` (dvc/rwlock.py). Read to
  see a `dvc` started without ./pipeline. The one write: an unreadable rwlock is removed. DVC rewrites the
  file in place, so a full disk can leave it empty, and then every DVC command fails ("Unable to read
  RWLock-file") until it is removed; no DVC process can be using an unreadable one.
- `.dvc/tmp/exps/run/workspace/workspace.json`: the ExecutorInfo of a `dvc exp run` in the workspace, with
  the PID of the process running it (dvc/repo/experiments/queue/workspace.py).
- DVC's own failures (outside any stage), from the exception in the error record DVC logs: by type and
  attributes only, never by its text: a write refused for lack of room or permission (OSError, its errno
  and file), or a path another DVC process holds (LockError).
- The experiments queue, through its Python API: each failed experiment and its output log (`dvc queue
  status` has no --json and says Failed, not why).

DVC's own reader for the rwlock (dvc.rwlock) costs 0.23 s to import, more than the no-op `./pipeline
repro` itself, which checks the file on every start; so the format is read here with json alone.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path

from adaline_repro.core import processes
from adaline_repro.core.checkout import DVC_TMP

CHECKED_AGAINST = "3.67.1"

RWLOCK = DVC_TMP / "rwlock"
WORKSPACE_EXPERIMENT = DVC_TMP / "exps" / "run" / "workspace" / "workspace.json"

# --- who is running DVC in this checkout ----------------------------------------------------------------


def workspace_experiment_pid(root: Path) -> int | None:
    """The PID DVC recorded for a `dvc exp run` in the workspace (it stays after the process dies)."""
    try:
        return int(json.loads((root / WORKSPACE_EXPERIMENT).read_text(encoding="utf-8"))["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def rwlock_writers(root: Path) -> dict[str, tuple[int, str]]:
    """Path (relative to root) -> (PID, command) of each path a DVC process holds for writing; {} when none
    or unreadable."""
    try:
        found = json.loads((root / RWLOCK).read_text(encoding="utf-8")).get("write", {})
        return {os.path.relpath(path, root): (int(info["pid"]), str(info["cmd"])) for path, info in found.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def bare_dvc_holder(root: Path) -> str | None:
    """A DVC process working in this checkout that did not come through ./pipeline (`dvc exp run` or `dvc
    repro` run directly), as `dvc exp run (PID n)`. A PID counts only while it still runs the command DVC
    recorded for it: DVC leaves the entries of killed processes behind."""
    pid = workspace_experiment_pid(root)
    if pid is not None and _runs(pid, ["exp", "run"]):
        return f"dvc exp run (PID {pid})"
    for pid, cmd in rwlock_writers(root).values():
        args = cmd.split()[1:]
        if _runs(pid, args):
            return f"dvc {' '.join(args)} (PID {pid})"
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


def remove_unreadable_rwlock(root: Path) -> bool:
    """Remove DVC's rwlock when it is not JSON (a full disk truncated it), under DVC's own guard for the
    file; True when it was removed."""
    path = root / RWLOCK
    if not path.exists():
        return False
    with open(path.with_name(path.name + ".lock"), "a") as guard:
        fcntl.flock(guard.fileno(), fcntl.LOCK_EX)
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            path.unlink(missing_ok=True)
            return True
        except OSError:
            return False
    return False


# --- DVC's own failures -----------------------------------------------------------------------------------

# A write that failed for lack of room or permission.
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES}


class DvcFailure(logging.Handler):
    """Attach to the `dvc` logger while DVC runs in this process; afterwards the attributes say what failed
    in DVC itself. DVC reports a failure only as the exception in its error log record; this keeps the
    exception's type and attributes, never its text."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.write: OSError | None = None  # a write refused: its errno, strerror and (when known) filename
        self.locked = False  # another DVC process holds a path DVC needed

    def emit(self, record: logging.LogRecord) -> None:
        from dvc.lock import LockError

        exc = record.exc_info[1] if record.exc_info else None
        while exc is not None:
            if isinstance(exc, OSError) and exc.errno in _WRITE_ERRNOS:
                self.write = exc
            if isinstance(exc, LockError):
                self.locked = True
            exc = exc.__cause__ or exc.__context__


# --- what `dvc status --json` says changed ---------------------------------------------------------------


def stale_reasons(status: Mapping[str, list]) -> list[str]:
    """`dvc status --json`'s changes to params or code without dvc.lock following, one line each:
    `stage: params.yaml train.epochs modified`, `stage: src/... modified`, `stage: command changed`."""
    reasons = []
    for stage, entries in sorted(status.items()):
        for entry in entries:
            if not isinstance(entry, dict):
                reasons.append(f"{stage}: {entry}")
                continue
            for path, change in entry.get("changed deps", {}).items():
                if isinstance(change, dict):  # a params file: key -> change
                    reasons += [f"{stage}: {path} {key} {what}" for key, what in sorted(change.items())]
                elif path.startswith("src/"):
                    reasons.append(f"{stage}: {path} {change}")
            if "changed command" in entry:
                reasons.append(f"{stage}: command changed")
    return reasons


# --- the experiments queue -----------------------------------------------------------------------------


def queue_failures(root: Path) -> dict[str, str]:
    """Failed experiment name -> why: the last `error: ` line its run printed (a stage's one-line reason, from
    the output log `dvc queue logs` prints)."""
    from dvc.repo import Repo

    reasons = {}
    with Repo(str(root)) as repo:
        queue = repo.experiments.celery_queue
        for done in queue.iter_failed():
            name = done.entry.name or done.entry.stash_rev[:7]
            try:
                log = Path(queue.proc[done.entry.stash_rev].stdout).read_text(encoding="utf-8", errors="replace")
            except (KeyError, OSError, TypeError):
                reasons[name] = "no output log (it failed during set-up)"
                continue
            ours = [line for line in log.splitlines() if line.startswith("error: ")]
            reasons[name] = ours[-1] if ours else f"no stage said why: see ./pipeline dvc queue logs {name}"
    return reasons

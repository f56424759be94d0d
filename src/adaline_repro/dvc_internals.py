"""The one seam to DVC's internals: every read or write of DVC's private files and every match of its
messages lives here. Checked against DVC 3.67.1 (requirements.lock pins it); tests/e2e/test_dvc_internals.py
makes real DVC write each file and message read here, so an upgrade that changes one fails a named test.

Where DVC offers a structured source it is used instead of text: exception types for a failed `dvc repro`,
the experiments queue's Python API (`dvc queue status` has no --json) and `dvc status --json`. What is left
as files and text:

- `.dvc/tmp/rwlock`: JSON `{"write": {path: {"pid", "cmd"}}, "read": {path: [{"pid", "cmd"}]}}`, the
  absolute paths each running DVC process holds, its command as `<dvc's __main__.py> repro`, guarded by
  `.dvc/tmp/rwlock.lock` (dvc/rwlock.py). DVC drops dead processes' entries only when they are in its
  way, and rewrites the file in place.
- `.dvc/tmp/exps/run/workspace/workspace.json`: the ExecutorInfo of a `dvc exp run` in the workspace, with
  the PID of the process running it (dvc/repo/experiments/queue/workspace.py).
- Messages: ReproductionError's "failed to reproduce 'stage'", StageCmdFailedError's "exited with N" and
  LockError's "'/absolute/path' is busy, it is being blocked by: (PID n): cmd".

One layout fact lives outside this module, where the stages need it without importing DVC-facing code:
queued and --temp experiments run in copies under `.dvc/tmp/exps/` (workspace.py finds the repository, its
store and the venv from it, and so does the `pipeline` script); the queue test checks it against real DVC.

DVC's own reader for the rwlock (dvc.rwlock) costs 0.23 s to import, more than the no-op `./pipeline
repro` itself, which checks the file on every start; so the format is read here with json alone.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import json
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path

from adaline_repro import processes
from adaline_repro.files import WriteError, atomic_write_text
from adaline_repro.workspace import DVC_TMP

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


def clean_rwlock(root: Path) -> bool:
    """Drop the entries of dead processes from DVC's rwlock, under DVC's own guard for that file (DVC drops
    only those in its way, with a warning each, and keeps the rest for ever). Returns True when the file
    was unreadable and so removed: DVC rewrites it in place, so a full disk can leave it empty, and then
    every DVC command fails until it is removed; no DVC process can be using an unreadable one."""
    path = root / RWLOCK
    if not path.exists():
        return False

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
            return True
        cleaned = {"write": writers, "read": {p: infos for p, infos in readers.items() if infos}}
        cleaned = {k: v for k, v in cleaned.items() if v}
        if cleaned != lock:
            with contextlib.suppress(WriteError):  # a full disk: DVC drops what is in its way itself
                atomic_write_text(path, json.dumps(cleaned))
    return False


# --- why `dvc repro` failed ------------------------------------------------------------------------------

# A write that failed for lack of room or permission: reported as one line.
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES}


class StageFailure(logging.Handler):
    """Attach to the `dvc` logger around `dvc repro`; afterwards the attributes say what failed.

    DVC reports a failure only as the exception in its error log record: ReproductionError("failed to
    reproduce 'stage'") caused by StageCmdFailedError("failed to run: cmd, exited with N"), or by the
    OSError of a full disk while it saved an output to its cache or wrote dvc.lock, or a LockError.
    """

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.stage: str | None = None
        self.code: int | None = None
        self.written: str | None = None  # `path: cannot write (reason)`, or the stage's, for DVC's own failed write
        self.busy: str | None = None  # `path is in use by cmd (PID n)`: another DVC process holds it

    def emit(self, record: logging.LogRecord) -> None:
        from dvc.exceptions import ReproductionError
        from dvc.lock import LockError
        from dvc.stage.exceptions import StageCmdFailedError

        exc = record.exc_info[1] if record.exc_info else None
        while exc is not None:
            if isinstance(exc, ReproductionError) and (found := re.search(r"failed to reproduce '([^']+)'", str(exc))):
                self.stage = found.group(1)
            if isinstance(exc, StageCmdFailedError) and (found := re.search(r"exited with (-?\d+)$", str(exc))):
                self.code = int(found.group(1))
            if isinstance(exc, OSError) and exc.errno in _WRITE_ERRNOS:
                self.written = (
                    f"{_relative(exc.filename)}: cannot write ({exc.strerror})"
                    if exc.filename
                    else f"DVC could not save the outputs of stage '{self.stage or '?'}' ({exc.strerror})"
                )
            if isinstance(exc, LockError):
                self.busy = busy_line(str(exc))
            exc = exc.__cause__ or exc.__context__


def _relative(path: str | os.PathLike) -> str:
    path = os.fspath(path)
    return os.path.relpath(path) if os.path.isabs(path) else path


def busy_line(message: str) -> str:
    """DVC's several-line `'path' is busy, it is being blocked by: (PID n): cmd ...` as one line, the path
    relative to the working directory and the command as `dvc <arguments>`."""
    path = re.search(r"'([^']+)' is busy", message)
    holders = re.findall(r"\(PID (\d+)\): (.+)", message)
    if not path or not holders:
        return "another DVC process holds this checkout's lock"
    return f"{_relative(path.group(1))} is in use by " + ", ".join(
        f"{_dvc_command(cmd)} (PID {pid})" for pid, cmd in holders
    )


def _dvc_command(cmd: str) -> str:
    """DVC records its own sys.argv: `/venv/.../dvc/__main__.py repro` (or `/venv/bin/dvc repro`) reads as
    `dvc repro`."""
    program, _, args = cmd.strip().partition(" ")
    return f"dvc {args}" if "dvc" in program else cmd.strip()


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

QUEUE_FINAL = ("Success", "Failed")


def queue_status(root: Path) -> dict[str, str]:
    """Experiment name -> its state in DVC's queue: Queued, Running, Success or Failed, from the queue's
    own API (what `dvc queue status` prints as a table). Success means the task finished and its
    experiment was collected (it has its ref); Failed, that the task finished without a result."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return {entry["name"]: entry["status"] for entry in repo.experiments.celery_queue.status() if entry["name"]}


def queue_failures(root: Path) -> dict[str, str]:
    """Failed experiment name -> why: the last `error: ` line its run printed (a stage's one-line reason,
    from the output log `dvc queue logs` prints), or DVC's own last ERROR line when no stage said one."""
    from dvc.repo import Repo

    reasons = {}
    with Repo(str(root)) as repo:
        queue = repo.experiments.celery_queue
        for done in queue.iter_failed():
            try:
                log = Path(queue.proc[done.entry.stash_rev].stdout).read_text(encoding="utf-8", errors="replace")
            except (KeyError, OSError, TypeError):
                reasons[done.entry.name or done.entry.stash_rev[:7]] = "no output log (it failed during set-up)"
                continue
            lines = log.splitlines()
            ours = [line for line in lines if line.startswith("error: ")]
            dvcs = [line for line in lines if line.startswith("ERROR: ")]
            reasons[done.entry.name or done.entry.stash_rev[:7]] = (ours or dvcs or ["no error line in its log"])[-1]
    return reasons


def queue_workers(root: Path) -> int:
    """How many of the queue's workers answer (Celery's inspect, as `dvc queue status`'s last line counts
    them): to wait for `dvc queue stop` to take effect, never to judge whether experiments finished."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return len(repo.experiments.celery_queue.worker_status())


# --- `dvc exp run -S`: the grid and how one value changes params.yaml ------------------------------------


class OverrideError(ValueError):
    """An `-S` value DVC itself would refuse (bad syntax, a key params.yaml lacks, a glob)."""


def exp_run_set_params(dvc_args: list[str]) -> dict[str, list[str]] | None:
    """The `-S` values of a `dvc exp run` command line (`--queue` and `--temp` included) by params file, as
    DVC's own argument parser and its `file:key=value` grouping read them; None when the line is not an
    `exp run` DVC would accept (DVC itself then says why)."""
    from dvc.cli import DvcParserError, parse_args
    from dvc.commands.experiments.run import CmdExperimentsRun
    from dvc.utils.cli_parse import to_path_overrides

    quiet = io.StringIO()
    logging.disable(logging.CRITICAL)  # DVC logs a bad line's error; it says it again when it runs
    try:
        with contextlib.redirect_stderr(quiet), contextlib.redirect_stdout(quiet):
            args = parse_args(list(dvc_args))
    except (DvcParserError, SystemExit):
        return None
    finally:
        logging.disable(logging.NOTSET)
    if getattr(args, "func", None) is not CmdExperimentsRun:
        return None
    return to_path_overrides(args.set_param or [])


def grid(overrides: list[str], params_file: str = "params.yaml") -> list[list[str]]:
    """Each combination `dvc exp run --queue -S ...` would queue, as its own `-S` values in DVC's order:
    DVC's expansion (hydra's sweep grammar: comma lists, range(...), choice(...)), called as DVC calls it."""
    from dvc.exceptions import InvalidArgumentError
    from dvc.utils.hydra import get_hydra_sweeps
    from hydra.errors import HydraException

    try:
        sweeps = get_hydra_sweeps({params_file: list(overrides)})
    except (InvalidArgumentError, HydraException) as exc:
        raise OverrideError(_hydra_line(exc)) from None
    return [sweep[params_file] for sweep in sweeps]


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """params.yaml's mapping after `dvc exp run -S` sets `overrides` on it: what dvc.utils.hydra's
    apply_overrides writes to the file, done in memory (the file round trip costs 15 ms a trial, this 4).
    DVC loads the file in OmegaConf's struct mode, so a key params.yaml lacks is refused unless given as
    `+key=...`, as DVC refuses it."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        parsed = OverridesParser.create().parse_overrides(overrides=list(overrides))
        config = OmegaConf.create(raw, flags={"allow_objects": True})
        OmegaConf.set_struct(config, True)
        ConfigLoaderImpl._apply_overrides_to_config(parsed, config)
        result = OmegaConf.to_object(config)
    except (HydraException, OmegaConfBaseException) as exc:
        raise OverrideError(_hydra_line(exc)) from None
    assert isinstance(result, dict)
    return result


def _hydra_line(exc: BaseException) -> str:
    """Hydra's message, first line, with the cause DVC's own wrapper hides."""
    cause = exc.__cause__ or exc.__context__
    text = str(exc).strip() or str(cause or type(exc).__name__)
    if cause and str(cause).strip() and str(cause).strip() not in text:
        text = f"{text}: {cause}"
    return text.splitlines()[0]

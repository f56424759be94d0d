"""Why `dvc repro` failed: which stage, with which exit code, a write DVC itself could not make, or a path
another DVC process holds.

DVC reports these only as text and exceptions in its error log record: ReproductionError("failed to
reproduce 'stage'") caused by StageCmdFailedError("failed to run: cmd, exited with N"), or by the OSError
of a full disk while it saved an output to its cache or wrote dvc.lock, or a LockError. This handler reads
them from that record, matching those exception types only.
"""

from __future__ import annotations

import errno
import logging
import os
import re

# A write that failed for lack of room or permission: reported as one line naming the file.
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES}


class StageFailure(logging.Handler):
    """Attach to the `dvc` logger around `dvc repro`; afterwards the attributes say what failed."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.stage: str | None = None
        self.code: int | None = None
        self.written: str | None = None  # `path: cannot write (reason)` for DVC's own failed write
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
                path = _written_path(exc)
                self.written = (
                    f"{path}: cannot write ({exc.strerror})"
                    if path
                    else f"DVC could not save the outputs of stage '{self.stage or '?'}' ({exc.strerror})"
                )
            if isinstance(exc, LockError):
                self.busy = _busy(str(exc))
            exc = exc.__cause__ or exc.__context__


# Names DVC's own code gives the file it is writing, when the OSError of a failed write or close carries no
# filename (it does only when opening fails): looked up in the failing frames, innermost first.
_PATH_LOCALS = ("path", "from_file", "to_file", "tmp_file", "fname", "to_path", "dest", "dst", "to_info")


def _written_path(exc: OSError) -> str | None:
    candidates = [exc.filename]
    tb = exc.__traceback__
    frames = []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):
        candidates += [frame.f_locals.get(name) for name in _PATH_LOCALS]
    for found in candidates:
        if isinstance(found, str | os.PathLike) and os.fspath(found):
            path = os.fspath(found)
            return os.path.relpath(path) if os.path.isabs(path) else path
    return None


def _busy(message: str) -> str:
    """DVC's several-line `'path' is busy, it is being blocked by: (PID n): cmd ...` as one line."""
    path = re.search(r"'([^']+)' is busy", message)
    holders = re.findall(r"\(PID (\d+)\): (.+)", message)
    if not path or not holders:
        return "another DVC process holds this checkout's lock"
    return f"{path.group(1)} is in use by " + ", ".join(f"{cmd.strip()} (PID {pid})" for pid, cmd in holders)

"""Every exit code of `./pipeline`, the error types that become one-line `error:` messages, and how a
command's process reports them.

Only these types are reported as one line with their exit code. Anything else is a bug: its traceback is
printed and the exit code is EXIT_BUG, so a programming error never looks like the user's mistake.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable

EXIT_OK = 0
EXIT_DIFFER = 1  # compare and check: the backends differ
EXIT_INPUT = 2  # bad params, data, device or command-line request
EXIT_STORE = 3  # the tracking store (or the server's database) failed
EXIT_DRIFT = 4  # check: fresh results moved away from the committed ones
EXIT_STALE = 5  # check: params.yaml or the code changed and dvc.lock was not updated
EXIT_BROKEN = 6  # check: set-up failed or a stage crashed in the scratch copy; sweep: a refused worker
EXIT_BUSY = 7  # another run holds this checkout (repro, check --update, dvc commands that write it)
EXIT_VERIFY = 8  # sweep --verify: a trial's bytes differ from what `dvc exp run` writes for it
EXIT_BUG = 70  # an unexpected exception (a bug): its traceback is printed (EX_SOFTWARE in sysexits.h)
EXIT_WRITE = 74  # a file could not be written: a full disk, a read-only folder (EX_IOERR in sysexits.h)
EXIT_INTERRUPTED = 130  # stopped by Ctrl-C (128 + SIGINT, as a shell reports it); a sweep's journal resumes it


class ReproError(Exception):
    """An expected failure the user can act on: shown as `error: <message>`, exits with `exit_code`."""

    exit_code = EXIT_INPUT


class InputError(ReproError):
    """Bad params, data or request: the user's input cannot be used as it is."""

    exit_code = EXIT_INPUT


class StoreError(ReproError):
    """The tracking store (or the database behind a tracking server) could not be reached or refused a write."""

    exit_code = EXIT_STORE


class WriteError(ReproError):
    """A file could not be written (a full disk, a read-only folder); the old file is kept."""

    exit_code = EXIT_WRITE


def exit_code_of(command: Callable[[], int]) -> int:
    """Run a command: its own exit code; the project's own errors become one `error:` line and theirs;
    anything else is a bug, shown with its traceback, exit EXIT_BUG."""
    try:
        return command()
    except ReproError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception:
        traceback.print_exc()
        print(f"error: unexpected failure (a bug; exit {EXIT_BUG}), traceback above", file=sys.stderr)
        return EXIT_BUG


def report_process(*, log: bool = True) -> None:
    """How a command's process reports: SIGTERM unwinds like Ctrl-C (open MLflow runs end KILLED, temporary
    files are removed) and exits 128 + 15; with `log`, Python's warnings go to stderr (not where DVC runs in
    the process: DVC prints through its own handlers, which would print each line twice)."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    if log:
        level = os.environ.get("ADALINE_LOG_LEVEL", "WARNING")
        logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)

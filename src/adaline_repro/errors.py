"""Every exit code of `./pipeline` and the error types that become one-line `error:` messages.

Only these types are reported as one line with their exit code. Anything else is a bug: the CLI prints its
traceback and exits with EXIT_BUG, so a programming error never looks like the user's mistake.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_DIFFER = 1  # compare and check: the backends differ
EXIT_INPUT = 2  # bad params, data, device or command-line request
EXIT_STORE = 3  # the tracking store (or the server's database) failed
EXIT_DRIFT = 4  # check: fresh results moved away from the committed ones
EXIT_STALE = 5  # check: params.yaml or the code changed and dvc.lock was not updated
EXIT_BROKEN = 6  # check: set-up failed or a stage crashed in the scratch copy
EXIT_BUSY = 7  # another run holds this checkout (repro, check --update, dvc commands that write it)
EXIT_VERIFY = 8  # sweep --verify: a trial's bytes differ from what `dvc exp run` writes for it
EXIT_INTERRUPTED = 130  # sweep: stopped by Ctrl-C (128 + SIGINT, as a shell reports it); the journal resumes it
EXIT_BUG = 70  # an unexpected exception (a bug): its traceback is printed (70 is EX_SOFTWARE in sysexits.h)


class ReproError(Exception):
    """An expected failure the user can act on: shown as `error: <message>`, exits with `exit_code`."""

    exit_code = EXIT_INPUT


class InputError(ReproError):
    """Bad params, data or request: the user's input cannot be used as it is."""

    exit_code = EXIT_INPUT


class StoreError(ReproError):
    """The tracking store (or the database behind a tracking server) could not be reached or refused a write."""

    exit_code = EXIT_STORE

"""`./pipeline repro` and `./pipeline dvc`: DVC's commands, run in this process with the checkout held, and
put back when the stages fail.

`./pipeline repro` holds the checkout (checkout_run.py), prepares the tracking store, answers at once when
nothing changed (uptodate.py), validates params.yaml (DVC deletes a stage's outputs before running it, so a
stage that only then found params.yaml invalid would leave the previous results gone), copies the outputs
aside and runs `dvc repro` in this process. A failed run is judged by what its stages recorded
(core/run_env.py): the stage that failed gives its own exit code, not DVC's 255; a failing compare keeps its
report (the backends differ: that is the result), any other failure puts every output back. DVC's own
failures (a full disk while it saves the outputs, another DVC holding a path) are told by their type
(dvc_support/internals.py).

`./pipeline dvc <args>` is any DVC command, with the venv on PATH (`dvc queue start`'s workers start `dvc` by
name). It adds: `-S` values refused before DVC writes params.yaml (dvc_support/overrides.py); the commands
that write this checkout hold it as repro does, and a workspace `exp run` is put back like it; `exp show`
gets its 120-column default view and `plots show` its offline page; `queue status` says why each failed
experiment failed.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from adaline_repro.core import run_env
from adaline_repro.core.checkout import repository_root
from adaline_repro.core.errors import EXIT_BUSY, EXIT_DIFFER, EXIT_OK, EXIT_WRITE
from adaline_repro.dvc_support import internals
from adaline_repro.repro import uptodate
from adaline_repro.repro.checkout_run import CheckoutRun, warn

# `repro` arguments after which everything is up to date (no stage targets, no partial runs).
_FULL_REPRO_FLAGS = {"-f", "--force", "-v", "--verbose", "-q", "--quiet"}


def take_wait(args: list[str]) -> tuple[bool, list[str]]:
    """Our --wait, taken out of what goes to DVC."""
    return "--wait" in args, [a for a in args if a != "--wait"]


def repro(dvc_args: list[str], root: Path, say: Callable[[str], None]) -> int:
    """The whole command, holding the checkout; returns the failing stage's own exit code, not DVC's 255."""
    wait, dvc_args = take_wait(dvc_args)
    with CheckoutRun(root, " ".join(["./pipeline repro", *dvc_args]), wait=wait) as run:
        from adaline_repro.dvc_support import plots_page
        from adaline_repro.tracking.execution import prepare_store

        prepare_store(repository_root(root))  # first: a switch of store removes the marker, which the shortcut sees
        plots_page.ensure_quietly(root, warn)  # the page .dvc/config names, for a bare `dvc plots show` too
        venv_stamp = Path(sys.prefix) / ".requirements.sha256"
        if not dvc_args and uptodate.unchanged(root, venv_stamp):
            say("Data and pipelines are up to date (no file DVC reads changed since the last ./pipeline repro).")
            return EXIT_OK
        from adaline_repro.core.params import load_params

        load_params("params.yaml")  # relative: messages name the file as the user knows it (cwd is root)
        uptodate.forget(root)
        code = reproduce(["repro", *dvc_args], root, say, run)
        if code == EXIT_OK and set(dvc_args) <= _FULL_REPRO_FLAGS:
            uptodate.record(root, venv_stamp)
        return code


def exp_run(dvc_args: list[str], root: Path, wait: bool) -> int:
    """`dvc exp run` in the workspace is `dvc repro` after DVC writes the -S values into params.yaml: held,
    and put back like repro when a stage fails, params.yaml included."""
    from adaline_repro.dvc_support.overrides import PARAMS_FILE
    from adaline_repro.tracking.execution import prepare_store

    with CheckoutRun(root, " ".join(["./pipeline dvc", *dvc_args]), wait=wait) as run:
        prepare_store(repository_root(root))
        uptodate.forget(root)
        return reproduce(dvc_args, root, warn, run, extra=(PARAMS_FILE,))


def reproduce(command: list[str], root: Path, say: Callable[[str], None], run: CheckoutRun,
              extra: tuple[str, ...] = ()) -> int:  # fmt: skip
    """`dvc repro` or a workspace `dvc exp run`, in this process, with every output, dvc.lock and `extra`
    copied aside first; kept when it succeeds, judged by its stages' outcomes when it does not."""
    from dvc.cli import main as dvc_main  # in this process: one interpreter start-up fewer

    if {"-v", "--verbose"} & set(command):
        os.environ[run_env.VERBOSE] = "1"  # the stages DVC starts print their detail (compare: its table)
    run.snapshot(extra)
    failure = internals.DvcFailure()
    logging.getLogger("dvc").addHandler(failure)
    signal.signal(signal.SIGTERM, _stop_stages_then_exit)
    with tempfile.TemporaryDirectory(prefix="adaline-outcomes-") as folder:
        os.environ[run_env.OUTCOMES] = folder
        try:
            code = dvc_main(command)
        finally:
            logging.getLogger("dvc").removeHandler(failure)
            os.environ.pop(run_env.OUTCOMES, None)
        stages = run_env.outcomes(Path(folder))
    if code == 0:
        run.keep()
        return EXIT_OK
    return _failed(command, root, say, run, stages, failure, code)


def _failed(command: list[str], root: Path, say: Callable[[str], None], run: CheckoutRun,
            stages: list[run_env.Outcome], failure: internals.DvcFailure, code: int) -> int:  # fmt: skip
    """What a failed DVC run leaves: kept when compare found the backends differ or another DVC is writing,
    put back otherwise; the exit code is the failing stage's, else one of ours for DVC's own failure."""
    failed = next((s for s in stages if s.exit_code not in (None, 0)), None)
    if failed is not None and failed.stage == "compare":  # the backends differ: its report is the result
        run.keep()
        if failed.exit_code == EXIT_DIFFER:
            say_differ(root, warn)
        return failed.exit_code
    if failed is None and failure.locked:  # a bare `dvc` is writing: putting back would undo its work
        run.keep()
        holder = internals.bare_dvc_holder(root) or "another DVC process"
        warn(f"{command[0]}: stopped: this checkout is in use by {holder}; the stages that finished are kept and "
             "nothing was put back, as that process is writing the outputs; run the command again when it has "
             "finished")  # fmt: skip
        return EXIT_BUSY
    if failed is None and failure.write is not None:  # DVC's own write (its cache, dvc.lock) on a full disk
        exc = failure.write
        last = next((s.stage for s in reversed(stages) if s.exit_code == 0), "?")
        where = os.path.relpath(exc.filename) if exc.filename else f"DVC could not save the outputs of stage '{last}'"
        warn(f"error: {where}{': cannot write' if exc.filename else ''} ({exc.strerror})")
    run.put_back()
    if any(s.exit_code is None for s in stages):  # a stage killed by a signal: its runs may be left RUNNING
        from adaline_repro.tracking.store import mark_killed

        mark_killed(root, run.say)
    if failed is not None:
        return failed.exit_code
    return EXIT_WRITE if failure.write is not None else code


def say_differ(root: Path, say: Callable[[str], None]) -> None:
    """The line `./pipeline repro` ends with when compare failed: what differs, from which step, and why."""
    from adaline_repro.comparison import Report
    from adaline_repro.core.checkout import pipeline_paths
    from adaline_repro.core.files import read_json

    paths = pipeline_paths(root)
    line = Report.from_json(read_json(root / paths.compare_json)).failure_line().removesuffix(".")
    say(f"repro: stopped at compare: {line} (see {paths.compare_md})")


def _stop_stages_then_exit(signum: int, frame: object) -> None:
    """SIGTERM to ./pipeline repro alone (`kill PID`): pass it to the stage running under DVC, wait for it to
    wind down (its partial files are removed, its runs end KILLED), then unwind so the outputs are put back."""
    import psutil  # installed with DVC

    from adaline_repro.core import processes

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    processes.stop([child.pid for child in psutil.Process().children(recursive=True)])
    raise SystemExit(128 + signum)


# Commands that write this checkout. That includes queueing an experiment (`exp run --queue`, `--temp`):
# DVC stashes the workspace and writes params.yaml into it for a moment. Running the queue (`queue start`,
# `exp run --run-all`) works in copies under .dvc/tmp/exps/ only.
_WRITES_WORKSPACE = {("repro",), ("checkout",), ("pull",), ("commit",), ("exp", "run"), ("exp", "apply")}
_NOT_THE_WORKSPACE = {"--run-all", "-h", "--help"}


def dvc(dvc_args: list[str], root: Path) -> int:
    """Any dvc command, in this process, with DVC's own output."""
    from adaline_repro.dvc_support import overrides

    wait, dvc_args = take_wait(dvc_args)
    overrides.check(dvc_args, root)  # a refused -S value: one line, before DVC writes params.yaml
    words = tuple(a for a in dvc_args if not a.startswith("-"))
    if words[:1] == ("plots",) and words[1:2] in {("show",), ("diff",)}:
        from adaline_repro.dvc_support import plots_page

        plots_page.ensure(root)  # the page .dvc/config names: its libraries inline, so it draws offline
    if words[:2] == ("exp", "show"):
        from adaline_repro.dvc_support import exp_show

        dvc_args = exp_show.arguments(dvc_args, root)
    if words[:2] == ("queue", "status") and not {"-h", "--help"} & set(dvc_args):
        return _queue_status(dvc_args, root)
    writes = words[:1] in _WRITES_WORKSPACE or words[:2] in _WRITES_WORKSPACE
    if not writes or _NOT_THE_WORKSPACE & set(dvc_args):
        return _dvc_main(dvc_args)
    if words[:2] == ("exp", "run") and not {"--queue", "--temp"} & set(dvc_args):
        return exp_run(dvc_args, root, wait)
    with CheckoutRun(root, " ".join(["./pipeline dvc", *dvc_args]), wait=wait, puts_back=False):
        return _dvc_main(dvc_args)


def _queue_status(dvc_args: list[str], root: Path) -> int:
    """DVC's table, then one line per failed experiment with the reason its stage gave."""
    from adaline_repro.dvc_support.internals import queue_failures

    code = _dvc_main(dvc_args)
    for name, reason in queue_failures(root).items():
        print(f"Failed {name}: {reason}", flush=True)
    return code


def _dvc_main(dvc_args: list[str]) -> int:
    from dvc.cli import main as dvc_main

    return dvc_main(dvc_args)

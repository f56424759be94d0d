"""`./pipeline repro`: validate params.yaml, prepare the tracking store, skip DVC when nothing changed,
run `dvc repro` in this process, and put every output back when a stage fails or the run is stopped."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from adaline_repro.errors import EXIT_BUSY, EXIT_DIFFER, EXIT_INPUT, EXIT_OK
from adaline_repro.repro import run_lock, uptodate

# `repro` arguments after which everything is up to date (no stage targets, no partial runs).
_FULL_REPRO_FLAGS = {"-f", "--force", "-v", "--verbose", "-q", "--quiet"}


def prepare_store(root: Path) -> None:
    """Before DVC starts: a tracking server must answer; the embedded store is created once (before any
    parallel use); a marker that vouches for runs in another (or a deleted) store is removed, so DVC runs
    the track stage again."""
    from adaline_repro.paths import pipeline_paths
    from adaline_repro.tracking.reachable import check_tracking_store
    from adaline_repro.workspace import embedded_db, marker_uri_file, tracking_uri

    uri = tracking_uri(root)
    check_tracking_store(uri)
    db = embedded_db(uri)
    marker = root / pipeline_paths(root).marker
    uri_file = marker_uri_file(marker)
    if uri_file.exists():
        logged_to = uri_file.read_text(encoding="utf-8").strip()
        if logged_to != uri or (db is not None and not db.exists()):
            marker.unlink(missing_ok=True)
            uri_file.unlink()
    if db is not None and not db.exists():
        from adaline_repro.tracking.store import init_store

        init_store(uri)


def repro(dvc_args: list[str], root: Path, say: Callable[[str], None]) -> int:
    """The whole command, holding the checkout; returns the failing stage's own exit code, not DVC's 255."""
    wait, dvc_args = _wait(dvc_args)
    with run_lock.hold(root, " ".join(["./pipeline repro", *dvc_args]), wait=wait, say=_warn) as run:
        return _repro(dvc_args, root, say, run)


def _repro(dvc_args: list[str], root: Path, say: Callable[[str], None], run: run_lock.Run) -> int:
    venv_stamp = Path(sys.prefix) / ".requirements.sha256"
    from adaline_repro.workspace import repository_root

    prepare_store(repository_root(root))  # first: a switch of store deletes the marker, which the shortcut then notices
    from adaline_repro.repro import plots_page

    plots_page.ensure_quietly(root, _warn)  # the page .dvc/config names, for a bare `dvc plots show` too
    if not dvc_args and uptodate.unchanged(root, venv_stamp):
        say("Data and pipelines are up to date (no file DVC reads changed since the last ./pipeline repro).")
        return EXIT_OK
    from adaline_repro.params import load_params

    # Validate before DVC starts: DVC deletes a stage's outputs before running it, so a stage that only then
    # found params.yaml invalid would leave the previous results gone.
    load_params("params.yaml")  # relative: messages name the file as the user knows it (cwd is root)
    uptodate.forget(root)
    code = _stages(["repro", *dvc_args], root, say, run)
    if code == EXIT_OK and set(dvc_args) <= _FULL_REPRO_FLAGS:
        uptodate.record(root, venv_stamp)
    return code


def _stages(command: list[str], root: Path, say: Callable[[str], None], run: run_lock.Run,
            extra: tuple[str, ...] = ()) -> int:  # fmt: skip
    """`dvc repro` or a workspace `dvc exp run`, in this process, with every output, dvc.lock and `extra`
    copied aside first and put back when a stage fails (not when compare does: its report is the result).
    Returns the failing stage's own exit code, not DVC's 255."""
    from dvc.cli import main as dvc_main  # in this process: one interpreter start-up fewer

    from adaline_repro.dvc_internals import StageFailure
    from adaline_repro.repro import rollback

    logging.getLogger().handlers.clear()  # DVC prints through its own handlers, to stdout as usual
    if {"-v", "--verbose"} & set(command):
        from adaline_repro.workspace import VERBOSE

        os.environ[VERBOSE] = "1"  # the stages DVC starts print their detail (compare: its table)
    failure = StageFailure()
    logging.getLogger("dvc").addHandler(failure)
    run.took(rollback.take(root, extra))
    signal.signal(signal.SIGTERM, _stop_stages_then_exit)
    try:
        code = dvc_main(command)
    except BaseException:  # SIGTERM (SystemExit) while a stage runs: put the outputs back, then stop
        run.put_back()
        raise
    finally:
        logging.getLogger("dvc").removeHandler(failure)
    if code == 0:
        run.keep()
        return EXIT_OK
    written = failure.written if failure.code is None else None  # a failed stage said its own line
    if written is not None:  # DVC's own write failed (a full disk): its message names no file
        _warn(f"error: {written}")
    if failure.busy is not None:  # a bare `dvc` (no lock of ours) is writing: putting back would undo its work
        run.keep()
        _warn(f"{command[0]}: stopped: {failure.busy}; the stages that finished are kept and nothing was put "
              "back, as that process is writing the outputs; run the command again when it has finished")  # fmt: skip
        return EXIT_BUSY
    if failure.stage == "compare":  # the backends differ: its report is the result, kept
        run.keep()
        if failure.code == EXIT_DIFFER:
            say_differ(root, _warn)
    else:
        run.put_back()
    if failure.code is not None and failure.code < 0:  # a stage killed by a signal: its runs may be RUNNING
        from adaline_repro.tracking import orphans

        orphans.mark_killed(root, run.say)
    if written is not None:
        return EXIT_INPUT
    return failure.code if failure.code is not None and failure.code > 0 else code


def _wait(args: list[str]) -> tuple[bool, list[str]]:
    """Our --wait, taken out of what goes to DVC."""
    return "--wait" in args, [a for a in args if a != "--wait"]


def _warn(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def say_differ(root: Path, say: Callable[[str], None]) -> None:
    """The line `./pipeline repro` ends with when compare failed: what differs, from which step, and why."""
    from adaline_repro.agreement import failure_line
    from adaline_repro.files import read_json
    from adaline_repro.paths import pipeline_paths

    paths = pipeline_paths(root)
    line = failure_line(read_json(root / paths.compare_json)).removesuffix(".")
    say(f"repro: stopped at compare: {line} (see {paths.compare_md})")


def _stop_stages_then_exit(signum: int, frame: object) -> None:
    """SIGTERM to ./pipeline repro alone (`kill PID`): pass it to the stage running under DVC, wait for it to
    wind down (its partial files are removed, its runs end KILLED), then unwind so the outputs are put back."""
    import psutil  # installed with DVC

    from adaline_repro import processes

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    processes.stop([child.pid for child in psutil.Process().children(recursive=True)])
    raise SystemExit(128 + signum)


# `./pipeline dvc` commands that write this checkout hold it as ./pipeline repro does. That includes queueing
# an experiment (`exp run --queue`, `--temp`): DVC stashes the workspace and writes params.yaml into it for a
# moment. Running the queue (`queue start`, `exp run --run-all`) works in copies under .dvc/tmp/exps/ only.
_WRITES_WORKSPACE = {("repro",), ("checkout",), ("pull",), ("commit",), ("exp", "run"), ("exp", "apply")}
_NOT_THE_WORKSPACE = {"--run-all", "-h", "--help"}


def dvc(dvc_args: list[str], root: Path) -> int:
    """Any dvc command, in this process, with DVC's own output handlers."""
    wait, dvc_args = _wait(dvc_args)
    from adaline_repro import set_params

    set_params.check(dvc_args, root)  # a refused -S value: one line, before DVC writes params.yaml
    words = tuple(a for a in dvc_args if not a.startswith("-"))
    if words[:1] == ("plots",) and words[1:2] in {("show",), ("diff",)}:
        from adaline_repro.repro import plots_page

        plots_page.ensure(root)  # the page .dvc/config names: its libraries inline, so it draws offline
    if words[:2] == ("exp", "show"):
        from adaline_repro.repro import exp_show

        dvc_args = exp_show.arguments(dvc_args, root)
    writes = words[:1] in _WRITES_WORKSPACE or words[:2] in _WRITES_WORKSPACE
    if words[:2] == ("queue", "status") and not {"-h", "--help"} & set(dvc_args):
        code = _dvc_main(dvc_args)
        from adaline_repro.dvc_internals import queue_failures

        for name, reason in queue_failures(root).items():  # DVC's table says Failed, not why
            print(f"Failed {name}: {reason}", flush=True)
        return code
    if not writes or _NOT_THE_WORKSPACE & set(dvc_args):
        return _dvc_main(dvc_args)
    if words[:2] == ("exp", "run") and not {"--queue", "--temp"} & set(dvc_args):
        return _exp_run_in_workspace(dvc_args, root, wait)
    with run_lock.hold(root, " ".join(["./pipeline dvc", *dvc_args]), wait=wait, say=_warn, rollback=False):
        return _dvc_main(dvc_args)


def _exp_run_in_workspace(dvc_args: list[str], root: Path, wait: bool) -> int:
    """`dvc exp run` in the workspace is `dvc repro` after DVC writes the -S values into params.yaml: held,
    and put back like repro when a stage fails, params.yaml included."""
    from adaline_repro.set_params import PARAMS_FILE
    from adaline_repro.workspace import repository_root

    with run_lock.hold(root, " ".join(["./pipeline dvc", *dvc_args]), wait=wait, say=_warn) as run:
        prepare_store(repository_root(root))
        uptodate.forget(root)
        return _stages(dvc_args, root, _warn, run, extra=(PARAMS_FILE,))


def _dvc_main(dvc_args: list[str]) -> int:
    from dvc.cli import main as dvc_main

    logging.getLogger().handlers.clear()
    return dvc_main(dvc_args)

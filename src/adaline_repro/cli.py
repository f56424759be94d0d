"""`./pipeline <command>`: parses the arguments and dispatches to the module that does the work, imported only
when its command runs. No logic of its own. The stages are programs of their own (`./pipeline stage <name>`
runs `python -m adaline_repro.stages.<name>`), so a stage's process does not even import this module."""

from __future__ import annotations

import argparse
import os
import sys
from functools import partial
from pathlib import Path

from adaline_repro.core.errors import EXIT_INTERRUPTED, InputError, exit_code_of, report_process

say = partial(print, flush=True)  # flushed: whoever reads the pipe (a test, a terminal) sees each line at once

DESCRIPTION = """\
ADALINE trained three ways (manual, autograd, module), reproduced with DVC, tracked with MLflow, and
checked: compare fails when the backends differ, and says from which update step and why.

Start with `./pipeline repro` (it sets up .venv the first time), then `./pipeline ui`."""
EPILOG = "README.md is the entry; docs/ has the details. Exit codes: docs/reliability.md#exit-codes."

# --- dispatch: one function per command --------------------------------------------------------------


def _check(a: argparse.Namespace) -> int:
    from adaline_repro.ops import check

    options = {"update": a.update, "wait": a.wait, "keep": a.keep, "log_to_store": a.log_to_store}
    return check.command(a.params, a.devices, **options, say=say, with_specs=a.with_specs)


def _sweep(a: argparse.Namespace) -> int:
    from adaline_repro.sweep import driver

    options = driver.Options(a.set_param, a.address, a.workers, a.verify, a.verify_seed, not a.no_log)
    try:
        return driver.command(Path.cwd(), options, say)
    except KeyboardInterrupt:  # the sweep said where its journal is
        return EXIT_INTERRUPTED


def _ui(a: argparse.Namespace) -> int:
    from adaline_repro.ops import ui

    ui.command(a.params, a.host, a.port, say)
    return 0


def _server(a: argparse.Namespace) -> int:
    from adaline_repro.ops import server

    server.command(server.Options(a.folder, a.db, a.artifacts, a.host, a.port, a.workers), say)
    return 0


def _repro(extra: list[str]) -> int:
    from adaline_repro.repro.command import repro

    return repro(extra, Path.cwd(), say)


def _dvc(extra: list[str]) -> int:
    from adaline_repro.repro.command import dvc

    return dvc(extra, Path.cwd())


def _stage(extra: list[str]) -> int:
    """A stage in this process (`./pipeline stage` itself starts `python -m adaline_repro.stages.<name>`)."""
    import importlib

    from adaline_repro import stages

    if not extra or extra[0] not in STAGES:
        raise InputError(f"stage: name one of {', '.join(STAGES)}")
    return stages.run_stage(importlib.import_module(f"adaline_repro.stages.{extra[0]}").main, extra[1:])


def _test(extra: list[str]) -> int:
    from adaline_repro.ops import devtools

    return devtools.test(extra)


def _bench(extra: list[str]) -> int:
    from adaline_repro.ops import devtools

    return devtools.bench(extra)


def _lint(a: argparse.Namespace) -> int:
    from adaline_repro.ops import devtools

    return devtools.lint()


def _lock(a: argparse.Namespace) -> int:
    from adaline_repro.ops import lock

    return lock.lock(upgrade=a.upgrade)


# Everything after these belongs to DVC, pytest or the bench, options included (argparse would eat them).
_PASS_THROUGH = {"repro": _repro, "dvc": _dvc, "stage": _stage, "test": _test, "bench": _bench}
_RUNS_DVC = {"repro", "dvc"}  # DVC prints through its own logging handlers: ours stay off
STAGES = ("fetch", "prepare", "train", "evaluate", "compare", "track")


# --- the parser ---------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="./pipeline", description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="<command>")
    for name, help_ in (
        ("repro", "set up .venv if needed, then run the pipeline (dvc repro: extra arguments go to DVC); a failed "
                  "run is put back;\n--wait: queue behind a run holding this checkout instead of refusing"),
        ("test", "the test suite, less the soak tier; --fast: the unit tier only; --soak: the soak tier only\n"
                 "(extra arguments go to pytest)"),
    ):  # fmt: skip
        sub.add_parser(name, help=help_).add_argument("extra", nargs=argparse.REMAINDER)
    ui = _command(sub, "ui", _ui, "the MLflow UI on the pipeline's store, with links to the latest execution")
    ui.add_argument("--port", type=int, default=5000)
    ui.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    _check_parser(sub)
    _sweep_parser(sub)
    _server_parser(sub)
    sub.add_parser(
        "dvc", help="any dvc command with .venv on PATH (exp run -S train.lr=0.05, exp show, queue start, push);\n"
        "those that write the checkout hold it like repro"
    ).add_argument("extra", nargs=argparse.REMAINDER)  # fmt: skip
    sub.add_parser("bench", help="benchmarks against a single script (extra arguments go to bench/bench.py)"
                   ).add_argument("extra", nargs=argparse.REMAINDER)  # fmt: skip
    sub.add_parser("lint", help="ruff check and ruff format --check (src, tests, bench)").set_defaults(func=_lint)
    p = sub.add_parser(
        "lock",
        help="regenerate requirements.lock and requirements-dev.lock from their .in files,\n"
        "keeping their pins; torch's entries for every platform and Python the project sets up on",
    )
    p.set_defaults(func=_lock)
    p.add_argument("--upgrade", action="store_true", help="resolve afresh: the newest releases the .in files allow")
    sub.add_parser(
        "stage", help="one of dvc.yaml's stages, as DVC runs it: fetch, prepare, train, evaluate, compare, track\n"
        "(./pipeline stage <name> --help lists its arguments)"
    ).add_argument("extra", nargs=argparse.REMAINDER)  # fmt: skip
    return parser


def _command(sub: argparse._SubParsersAction, name: str, func: object, help_: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_)
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    p.set_defaults(func=func)
    return p


def _check_parser(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "check", _check, "re-run everything in a scratch copy; fail on backend differences or drift")
    p.add_argument("--devices", help="cpu, cuda or cpu,cuda (default: train.device from params.yaml)")
    p.add_argument("--update", action="store_true", help="rewrite the committed results from a fresh run")
    p.add_argument("--wait", action="store_true", help="with --update: wait for a run holding the checkout")
    p.add_argument("--keep", action="store_true", help="keep the scratch copy for inspection")
    p.add_argument("--log-to-store", action="store_true", help="log the check's runs to the usual MLflow store")
    p.add_argument(
        "--with",
        dest="with_specs",
        action="append",
        metavar="SPEC",
        help="run under other versions: a pip requirement (torch==2.15.0), a bare name (its newest release) or "
        "latest (every direct dependency's newest); repeatable. Builds a cached venv; never edits the lock",
    )


def _sweep_parser(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "sweep", _sweep, "many configurations as Ray tasks, each the pipeline's own stages")
    p.add_argument(
        "-S",
        "--set-param",
        action="append",
        default=[],
        metavar="KEY=VALUES",
        help="as dvc exp run --queue -S: a,b,c or range(start,stop[,step]) (default: sweep.yaml)",
    )
    p.add_argument(
        "--address",
        default=os.environ.get("RAY_ADDRESS"),
        help="join the Ray cluster there (default: $RAY_ADDRESS, else an embedded Ray on loopback)",
    )
    p.add_argument("--workers", type=int, help="the embedded Ray's worker processes (default: one per core)")
    p.add_argument(
        "--verify",
        type=int,
        default=0,
        metavar="K",
        help="re-run K random trials through dvc exp run; fail on any byte that differs",
    )
    p.add_argument("--verify-seed", type=int, default=0, help="which K trials --verify picks")
    p.add_argument("--no-log", action="store_true", help="do not log the sweep to MLflow")  # fmt: skip


def _server_parser(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "server", _server, "a shared MLflow tracking server on PostgreSQL (prints the URI to export)")
    p.add_argument(
        "--folder",
        type=Path,
        default=Path(".server"),
        help="its state: postgres/ (the local database), artifacts/, mlflow.log (default: .server)",
    )
    p.add_argument(
        "--db",
        default=os.environ.get("ADALINE_SERVER_DB"),
        help="postgresql+psycopg:// URL of a database you run (default: $ADALINE_SERVER_DB, else a "
        "throw-away local PostgreSQL in FOLDER/postgres)",
    )
    p.add_argument(
        "--artifacts",
        help="artifact destination: a folder or any MLflow store URI such as "
        "s3://bucket/path (default: FOLDER/artifacts)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--workers", type=int, default=2, help="server worker processes (default: 2)")  # fmt: skip


# --- main ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["stage"] and argv[1:2] and argv[1] in STAGES:  # it reports as its own process does
        return _stage(argv[1:])
    report_process(log=not argv or argv[0] not in _RUNS_DVC)
    if argv and argv[0] in _PASS_THROUGH and not {"-h", "--help"} & set(argv[1:2]):
        return exit_code_of(lambda: _PASS_THROUGH[argv[0]](argv[1:]))
    args = _parser().parse_args(argv)
    return exit_code_of(lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())

"""Command line: `./pipeline <command>`. Parses arguments and dispatches; each command lives in its module
and is imported only when it runs, so a stage process imports only what that stage needs."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import traceback
from functools import partial
from pathlib import Path

from adaline_repro.errors import EXIT_BUG, ReproError

say = partial(print, flush=True)  # flushed: whoever reads the pipe (a test, a terminal) sees each line at once


def _verbose() -> bool:
    from adaline_repro.workspace import VERBOSE

    return os.environ.get(VERBOSE) == "1"


# --- dispatch: one line per command --------------------------------------------------------------


def _fetch(a: argparse.Namespace) -> int:
    from adaline_repro.stages import fetch

    return fetch.stage(a.params, a.out, say)


def _prepare(a: argparse.Namespace) -> int:
    from adaline_repro.stages import prepare

    return prepare.stage(a.params, a.raw, a.train, a.test, a.scaler, say)


def _train(a: argparse.Namespace) -> int:
    from adaline_repro.stages import train

    return train.stage(a.params, a.backend, a.train, a.model, a.curve, a.steps, say)


def _evaluate(a: argparse.Namespace) -> int:
    from adaline_repro.stages import evaluate

    return evaluate.stage(a.params, _dirs(a), a.train, a.test, say)


def _plot(a: argparse.Namespace) -> int:
    from adaline_repro import figures

    return figures.command(a.params, a.curves, a.out, say)


def _compare(a: argparse.Namespace) -> int:
    from adaline_repro.results import CompareFiles
    from adaline_repro.stages import compare

    files = CompareFiles(a.report_json, a.report_md, a.verdict, a.loss_plot, a.diff_plot)
    return compare.stage(a.params, _dirs(a), files, _inputs(a), a.marker, say, verbose=_verbose())


def _track(a: argparse.Namespace) -> int:
    from adaline_repro.stages import track

    return track.stage(a.params, _dirs(a), a.report, _inputs(a), a.marker, say)


def _check(a: argparse.Namespace) -> int:
    from adaline_repro.ops import check

    return check.command(
        a.params, a.devices, update=a.update, wait=a.wait, keep=a.keep, log_to_store=a.log_to_store, say=say
    )


def _sweep(a: argparse.Namespace) -> int:
    from adaline_repro.errors import EXIT_INTERRUPTED
    from adaline_repro.sweep import run

    options = run.Options(a.set_param, a.address, a.workers, a.verify, a.verify_seed, not a.no_log)
    try:
        return run.command(Path.cwd(), options, say)
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
    from adaline_repro.repro.run import repro

    return repro(extra, Path.cwd(), say)


def _dvc(extra: list[str]) -> int:
    from adaline_repro.repro.run import dvc

    return dvc(extra, Path.cwd())


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
    from adaline_repro.ops import devtools

    return devtools.lock()


# Everything after these belongs to dvc, pytest or the bench, options included (argparse would eat them).
_PASS_THROUGH = {"repro": _repro, "dvc": _dvc, "test": _test, "bench": _bench}


def _dirs(a: argparse.Namespace):  # noqa: ANN202  (ResultDirs, imported with the stage that needs it)
    from adaline_repro.results import ResultDirs

    return ResultDirs(a.models, a.curves, a.predictions, a.metrics, getattr(a, "steps", None))


def _inputs(a: argparse.Namespace):  # noqa: ANN202  (ExecutionInputs, imported with the stage that needs it)
    from adaline_repro.results import ExecutionInputs

    return ExecutionInputs(raw=a.raw, train=a.train, test=a.test, figure=a.figure)


# --- parser ---------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="./pipeline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, func: object, help_: str, *paths: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_)
        p.add_argument("--params", type=Path, default=Path("params.yaml"))
        for path in paths:  # stage paths: dvc.yaml passes every one
            p.add_argument(f"--{path}", type=Path, required=True)
        p.set_defaults(func=func)
        return p

    results = ("models", "curves", "predictions", "metrics")
    logged = ("raw", "train", "test", "figure", "marker")
    command("fetch", _fetch, "stage: write the raw Iris table", "out")
    command("prepare", _prepare, "stage: select, split and standardize", "raw", "train", "test", "scaler")
    p = command("train", _train, "stage: train one backend (dvc.yaml has one stage per backend)", "train", "model",
                "curve", "steps")  # fmt: skip
    p.add_argument("--backend", required=True, help="a name from train.backends")
    command("evaluate", _evaluate, "stage: predictions and accuracies of every backend", *results, "train", "test")
    command("plot", _plot, "the loss-curve figure (the track stage draws it)", "curves", "out")
    command("compare", _compare, "stage: fail when the backends differ (logging the execution first)",
            *results, "steps", "report-json", "report-md", "verdict", "loss-plot", "diff-plot", *logged)  # fmt: skip
    command("track", _track, "stage: draw the loss-curve figure and log the execution to MLflow",
            *results, "steps", "report", *logged)  # fmt: skip

    p = command("check", _check, "re-run everything in a scratch copy; fail on backend differences or drift")
    p.add_argument("--devices", help="cpu, cuda or cpu,cuda (default: train.device from params.yaml)")
    p.add_argument("--update", action="store_true", help="rewrite the committed results from a fresh run")
    p.add_argument("--wait", action="store_true", help="with --update: wait for a run holding the checkout")
    p.add_argument("--keep", action="store_true", help="keep the scratch copy for inspection")
    p.add_argument("--log-to-store", action="store_true", help="log the check's runs to the usual MLflow store")

    p = command("sweep", _sweep, "many configurations as Ray tasks, each the pipeline's own stages (docs/sweep.md)")
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

    p = command("ui", _ui, "the MLflow UI on the pipeline's store, with links to the latest execution")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")

    p = command("server", _server, "a shared MLflow tracking server on PostgreSQL (prints the URI to export)")
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

    for name, help_ in (
        (
            "repro",
            "set up if needed, then dvc repro (extra arguments go to dvc; --wait: wait for a run "
            "holding the checkout instead of refusing)",
        ),
        (
            "dvc",
            "any dvc command with the venv on PATH (dvc push, dvc exp show, dvc queue start); those that "
            "write the workspace hold it like repro (--wait as for repro)",
        ),
        (
            "test",
            "the test suite, less the soak tier; --fast: the unit tier only; --soak: the soak tier only "
            "(extra arguments go to pytest)",
        ),
        ("bench", "benchmarks against a single script (extra arguments go to bench/bench.py)"),
    ):
        sub.add_parser(name, help=help_).add_argument("extra", nargs=argparse.REMAINDER)
    sub.add_parser("lint", help="ruff check and ruff format --check (src, tests, bench)").set_defaults(func=_lint)
    sub.add_parser(
        "lock", help="regenerate requirements.lock and requirements-dev.lock (with hashes) from their .in files"
    ).set_defaults(func=_lock)
    return parser


def _exit_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C: open MLflow runs end KILLED and temporary files are removed."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=os.environ.get("ADALINE_LOG_LEVEL", "WARNING"), format="%(levelname)s %(name)s: %(message)s"
    )
    argv = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        if argv and argv[0] in _PASS_THROUGH and not {"-h", "--help"} & set(argv[1:2]):
            return _PASS_THROUGH[argv[0]](argv[1:])
        args = _parser().parse_args(argv)
        return args.func(args)
    except ReproError as exc:  # the project's own errors: one line, their own exit code
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception:  # a bug: the whole traceback, and an exit code no expected failure uses
        traceback.print_exc()
        print(f"error: unexpected failure (a bug; exit {EXIT_BUG}), traceback above", file=sys.stderr)
        return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())

"""Command line: `./pipeline <command>`. Stage commands are thin; each imports only what it needs."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the stages import what they need when they run; the CLI itself stays light
    from adaline_repro.layout import ResultDirs
    from adaline_repro.params import Params
    from adaline_repro.track import Inputs

EXIT_DIFFER = 1  # compare: the backends differ
EXIT_INPUT = 2  # bad params, data or device
EXIT_TRACKING = 3  # the tracking store failed

log = logging.getLogger("adaline_repro")


class _Fail(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _params(args: argparse.Namespace) -> Params:
    from adaline_repro.params import load_params

    return load_params(args.params)


# --- stage commands -------------------------------------------------------------------------------


def cmd_fetch(args: argparse.Namespace) -> int:
    from adaline_repro.fetch import fetch
    from adaline_repro.files import atomic_write_text

    atomic_write_text(args.out, fetch(_params(args).fetch))
    print(f"fetch: wrote {args.out}")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from adaline_repro import prepare

    prepared = prepare.run(args.raw, args.train, args.test, args.scaler, _params(args).prepare)
    print(f"prepare: {len(prepared.train.y)} training rows, {len(prepared.test.y)} test rows")
    return 0


def _dirs(args: argparse.Namespace) -> ResultDirs:
    from adaline_repro.layout import ResultDirs

    return ResultDirs(args.models, args.curves, args.predictions_dir, args.metrics_dir)


def _check_store_answers() -> None:
    """Fail before any work when the tracking store is a server that does not answer."""
    from adaline_repro.locations import tracking_uri
    from adaline_repro.preflight import StoreUnreachable, check_tracking_store

    try:
        check_tracking_store(tracking_uri())
    except StoreUnreachable as exc:
        raise _Fail(str(exc), EXIT_TRACKING) from None


def cmd_train(args: argparse.Namespace) -> int:
    from adaline_repro import train

    params = _params(args)
    _check_store_answers()  # before minutes of training, not after them at the track stage
    result, orders = train.run(args.backend, args.train, args.model, args.curve, params.train)
    print(
        f"train@{result.backend}: {len(result.losses)} epochs on {result.device}, "
        f"final train_mse {result.losses[-1]}, shuffle orders {orders}"
    )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from adaline_repro import evaluate

    params = _params(args)
    results = evaluate.run(_dirs(args), params.train.backends, args.train, args.test, params.evaluate)
    for backend, metrics in results.items():
        print(
            f"evaluate@{backend}: train accuracy {metrics['train_accuracy']:.4f}, "
            f"test accuracy {metrics['test_accuracy']:.4f}"
        )
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    _plot(_params(args), args.curves, args.out)
    print(f"plot: wrote {args.out}")
    return 0


def _plot(params: Params, curves: Path, out: Path) -> None:
    from adaline_repro.figures import loss_figure
    from adaline_repro.files import atomic_write_bytes
    from adaline_repro.layout import curve_file
    from adaline_repro.model import read_curve

    atomic_write_bytes(out, loss_figure({b: read_curve(curve_file(curves, b)) for b in params.train.backends}))


def _track_inputs(args: argparse.Namespace) -> Inputs:
    from adaline_repro.track import Inputs

    return Inputs(raw=args.raw, train=args.train, test=args.test, figure=args.figure)


def _say_logged(parent: str | None, params: Params, report: dict) -> None:
    from adaline_repro.locations import tracking_uri

    verdict = "passed" if report["passed"] else "FAILED"
    if parent is None:
        print(f"track: {tracking_uri()} already holds this execution (compare {verdict})")
    else:
        print(f"track: logged run {parent} and {len(params.train.backends)} backend runs (compare {verdict})")


def cmd_compare(args: argparse.Namespace) -> int:
    from adaline_repro.compare import compare, load_outputs
    from adaline_repro.files import atomic_write_text, write_json

    params = _params(args)
    dirs = _dirs(args)
    report = compare([load_outputs(b, dirs) for b in params.train.backends], params.compare)
    summary = report.as_dict()
    write_json(args.report_json, summary)
    atomic_write_text(args.report_md, report.markdown())
    print(report.markdown())
    if report.passed:
        return 0
    # dvc repro stops here, before the track stage: log this execution now, figure included, so the
    # difference can be inspected in MLflow. (A failing stage is never cached, so what this reads need
    # not be its deps.)
    from adaline_repro import track

    _plot(params, args.curves, args.figure)
    _say_logged(track.log(params, dirs, _track_inputs(args), summary, args.marker), params, summary)
    return EXIT_DIFFER


def cmd_track(args: argparse.Namespace) -> int:
    from adaline_repro import track
    from adaline_repro.files import read_json

    params = _params(args)
    report = read_json(args.report)
    # Draw the figure in a second process while this one imports MLflow: a second or two each, and on
    # two cores they overlap. The figure must exist before the parent run's artifacts are logged.
    command = ["plot", "--params", args.params, "--curves", args.curves, "--out", args.figure]
    plot = subprocess.Popen([sys.executable, "-m", "adaline_repro", *map(str, command)], stdout=subprocess.DEVNULL)
    try:
        import adaline_repro.tracking  # noqa: F401  (the slow import this overlaps)
    finally:
        if plot.wait() != 0:
            raise _Fail(f"track: drawing {args.figure} failed (see the error above)", EXIT_INPUT)
    _say_logged(track.log(params, _dirs(args), _track_inputs(args), report, args.marker), params, report)
    return 0


# --- workflow commands ----------------------------------------------------------------------------


def _prepare_store() -> None:
    """Before DVC starts: a tracking server must answer; the embedded store is created once (before any
    parallel use); logging done to another store is forgotten."""
    from adaline_repro.locations import TRACKING_STATE, embedded_db, repository_root, tracking_uri

    root = repository_root()
    uri = tracking_uri(root)
    _check_store_answers()
    db = embedded_db(uri)
    for uri_file in (root / TRACKING_STATE).glob("*.uri"):
        logged_to = uri_file.read_text(encoding="utf-8").strip()
        if logged_to != uri or (db is not None and not db.exists()):
            # The marker vouches for runs in another (or a deleted) store: make DVC run the track stage again.
            uri_file.with_suffix("").unlink(missing_ok=True)
            uri_file.unlink()
    if db is not None and not db.exists():
        from adaline_repro.tracking import init_store

        init_store(uri)


def cmd_check(args: argparse.Namespace) -> int:
    from adaline_repro import check
    from adaline_repro.locations import repository_root

    params = _params(args)
    devices = [d.strip() for d in (args.devices or params.train.device).split(",") if d.strip()]
    if not devices or len(devices) > 2 or set(devices) - {"cpu", "cuda", "auto"}:
        raise _Fail("check: --devices takes one or two of cpu, cuda, auto (comma-separated)", EXIT_INPUT)
    try:
        return check.run_check(
            repository_root(), params, devices, update=args.update, keep=args.keep, log_to_store=args.log_to_store
        )
    except check.CheckError as exc:
        raise _Fail(f"check: {exc}", check.EXIT_INPUT) from None


def cmd_ui(args: argparse.Namespace) -> int:
    from adaline_repro import mlflow_server, ui
    from adaline_repro.locations import TRACKING_STATE, redacted, repository_root, tracking_uri

    experiment = _params(args).tracking.experiment
    uri = tracking_uri()

    def find_links(base: str) -> ui.Links:
        from adaline_repro.tracking import latest_execution

        latest = latest_execution(uri, experiment)
        if latest is None:
            return ui.links(base, None, [])
        return ui.links(base, latest.experiment_id, latest.child_run_ids)

    try:
        if uri.startswith(("http://", "https://")):
            print(f"tracking server {redacted(uri)}: nothing to start")
            ui.say_links(find_links(uri), print)
            return 0
        ui.serve(uri, args.host, args.port, repository_root() / TRACKING_STATE / "mlflow-ui.log", find_links)
    except mlflow_server.ServerError as exc:
        raise _Fail(f"ui: {exc}", EXIT_INPUT) from None
    except KeyboardInterrupt:
        print("\nui: stopped")
    return 0


def cmd_server(args: argparse.Namespace) -> int:
    from functools import partial

    from adaline_repro import mlflow_server, postgres, server

    # Stop cleanly (MLflow, then PostgreSQL) on Ctrl-C even when started where SIGINT is ignored (a shell's
    # background job), and when the terminal closes.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGHUP, _exit_on_sigterm)
    options = server.Options(
        folder=args.folder, db=args.db, artifacts=args.artifacts, host=args.host, port=args.port, workers=args.workers
    )
    try:
        server.run(options, partial(print, flush=True))  # flushed: whoever reads the pipe sees the URI at once
    except mlflow_server.ServerError as exc:
        raise _Fail(f"server: {exc}", EXIT_INPUT) from None
    except postgres.PostgresError as exc:
        raise _Fail(f"server: {exc}", EXIT_TRACKING) from None
    except KeyboardInterrupt:
        print("\nserver: stopped (MLflow and PostgreSQL)")
    return 0


# `repro` arguments after which everything is up to date (no stage targets, no partial runs).
_FULL_REPRO_FLAGS = {"-f", "--force", "-v", "--verbose", "-q", "--quiet"}


def cmd_repro(args: argparse.Namespace) -> int:
    from adaline_repro import uptodate

    root, venv_stamp = Path.cwd(), Path(sys.prefix) / ".requirements.sha256"
    _prepare_store()  # first: a switch of store deletes the marker, which the shortcut then notices
    if not args.extra and uptodate.unchanged(root, venv_stamp):
        print("Data and pipelines are up to date (no file DVC reads changed since the last ./pipeline repro).")
        return 0
    from adaline_repro.params import load_params

    # Validate before DVC starts: DVC deletes a stage's outputs before running it, so a stage that only then
    # found params.yaml invalid would leave the previous results gone.
    load_params("params.yaml")
    uptodate.forget(root)
    from dvc.cli import main as dvc_main  # in this process: one interpreter start-up fewer

    from adaline_repro import rollback

    logging.getLogger().handlers.clear()  # DVC prints through its own handlers, to stdout as usual
    failure = _StageFailure()
    logging.getLogger("dvc").addHandler(failure)
    snapshot = rollback.take(root)
    signal.signal(signal.SIGTERM, _stop_stages_then_exit)
    try:
        code = dvc_main(["repro", *args.extra])
    except BaseException:  # SIGTERM (SystemExit) while a stage runs: put the outputs back, then stop
        rollback.restore(snapshot)
        print(_ROLLED_BACK, file=sys.stderr)
        raise
    finally:
        logging.getLogger("dvc").removeHandler(failure)
    if code == 0:
        rollback.discard(snapshot)
        if set(args.extra) <= _FULL_REPRO_FLAGS:
            uptodate.record(root, venv_stamp)
        return 0
    if failure.stage == "compare":  # the backends differ: its report is the result, kept
        rollback.discard(snapshot)
    else:
        rollback.restore(snapshot)
        print(_ROLLED_BACK, file=sys.stderr)
    # The failing stage's own code (2: bad input, 3: tracking store, 1: the backends differ), not DVC's 255.
    return failure.code or code


def _stop_stages_then_exit(signum: int, frame: object) -> None:
    """SIGTERM to ./pipeline repro alone (`kill PID`): pass it to the stage running under DVC, wait for it to
    wind down (its partial files are removed, its runs end KILLED), then unwind so the outputs are put back."""
    import psutil  # installed with DVC

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    children = psutil.Process().children(recursive=True)
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.terminate()
    _, alive = psutil.wait_procs(children, timeout=30)
    for child in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    raise SystemExit(128 + signum)


_ROLLED_BACK = "repro: outputs and dvc.lock are as they were before this run"


class _StageFailure(logging.Handler):
    """Reads DVC's error record: which stage failed, and the exit code of its command."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.stage: str | None = None
        self.code: int | None = None

    def emit(self, record: logging.LogRecord) -> None:
        import re

        exc = record.exc_info[1] if record.exc_info else None
        while exc is not None:
            text = str(exc)
            if found := re.search(r"failed to reproduce '([^']+)'", text):
                self.stage = found.group(1)
            if found := re.search(r"exited with (\d+)$", text):
                self.code = int(found.group(1))
            exc = exc.__cause__


def cmd_dvc(args: argparse.Namespace) -> int:
    from dvc.cli import main as dvc_main

    logging.getLogger().handlers.clear()  # DVC prints through its own handlers
    return dvc_main(args.extra)


def cmd_test(args: argparse.Namespace) -> int:
    return subprocess.call([sys.executable, "-m", "pytest", *args.extra])


def cmd_lock(args: argparse.Namespace) -> int:
    """Regenerate requirements.lock from requirements.in in a throw-away venv."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip"]
        subprocess.run([*pip, "install", "-q", "-r", "requirements.in"], check=True)
        frozen = subprocess.run([*pip, "freeze"], check=True, capture_output=True, text=True).stdout
    lines = [line.replace("+cpu", "") for line in frozen.splitlines() if line and not line.startswith("-e ")]
    header = "# Generated from requirements.in by ./pipeline lock (pip freeze of a fresh venv). Do not edit by hand."
    Path("requirements.lock").write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    print(f"lock: {len(lines)} packages pinned in requirements.lock")
    return 0


# --- parser -------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="./pipeline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def stage(name: str, func: Callable[[argparse.Namespace], int], help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_)
        p.add_argument("--params", type=Path, default=Path("params.yaml"))
        p.set_defaults(func=func)
        return p

    p = stage("fetch", cmd_fetch, "stage: write the raw Iris table")
    p.add_argument("--out", type=Path, required=True)

    p = stage("prepare", cmd_prepare, "stage: select, split and standardize")
    for name in ("raw", "train", "test", "scaler"):
        p.add_argument(f"--{name}", type=Path, required=True)

    def results(p: argparse.ArgumentParser, *folders: str) -> None:
        for folder in folders:
            dest = {"predictions": "predictions_dir", "metrics": "metrics_dir"}.get(folder, folder)
            p.add_argument(f"--{folder}", dest=dest, type=Path, required=True)

    def logged(p: argparse.ArgumentParser) -> None:
        for name in ("raw", "train", "test", "figure", "marker"):
            p.add_argument(f"--{name}", type=Path, required=True)

    p = stage("train", cmd_train, "stage: train one backend (dvc.yaml has one stage per backend)")
    p.add_argument("--backend", required=True, help="a name from train.backends")
    for name in ("train", "model", "curve"):
        p.add_argument(f"--{name}", type=Path, required=True)

    p = stage("evaluate", cmd_evaluate, "stage: predictions and accuracies of every backend")
    results(p, "models", "curves", "predictions", "metrics")
    for name in ("train", "test"):
        p.add_argument(f"--{name}", type=Path, required=True)

    p = stage("plot", cmd_plot, "the loss-curve figure (the track stage draws it)")
    p.add_argument("--curves", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)

    p = stage("compare", cmd_compare, "stage: fail when the backends differ (logging the execution first)")
    results(p, "models", "curves", "predictions", "metrics")
    p.add_argument("--report-json", type=Path, required=True)
    p.add_argument("--report-md", type=Path, required=True)
    logged(p)

    p = stage("track", cmd_track, "stage: draw the loss-curve figure and log the execution to MLflow")
    results(p, "models", "curves", "predictions", "metrics")
    p.add_argument("--report", type=Path, required=True, help="reports/compare.json")
    logged(p)

    p = sub.add_parser("check", help="re-run everything in a scratch copy; fail on backend differences or drift")
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    p.add_argument("--devices", help="cpu, cuda or cpu,cuda (default: train.device from params.yaml)")
    p.add_argument("--update", action="store_true", help="rewrite the committed results from a fresh run")
    p.add_argument("--keep", action="store_true", help="keep the scratch copy for inspection")
    p.add_argument("--log-to-store", action="store_true", help="log the check's runs to the usual MLflow store")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("ui", help="the MLflow UI on the pipeline's store, with links to the latest execution")
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    p.set_defaults(func=cmd_ui)

    p = sub.add_parser("server", help="a shared MLflow tracking server on PostgreSQL (prints the URI to export)")
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
    p.add_argument("--workers", type=int, default=2, help="server worker processes (default: 2)")
    p.set_defaults(func=cmd_server)

    p = sub.add_parser("repro", help="set up if needed, then dvc repro (extra arguments go to dvc)")
    p.add_argument("extra", nargs=argparse.REMAINDER, metavar="DVC_ARGS")
    p.set_defaults(func=cmd_repro)
    p = sub.add_parser("dvc", help="set up if needed, then any dvc command (dvc push, dvc pull, dvc exp show)")
    p.add_argument("extra", nargs=argparse.REMAINDER, metavar="DVC_ARGS")
    p.set_defaults(func=cmd_dvc)
    p = sub.add_parser("test", help="set up if needed, then pytest (extra arguments go to pytest)")
    p.add_argument("extra", nargs=argparse.REMAINDER, metavar="PYTEST_ARGS")
    p.set_defaults(func=cmd_test)
    p = sub.add_parser("bench", help="benchmarks against a single script (extra arguments go to bench/bench.py)")
    p.add_argument("extra", nargs=argparse.REMAINDER, metavar="BENCH_ARGS")
    p.set_defaults(func=cmd_bench)
    p = sub.add_parser("lock", help="regenerate requirements.lock from requirements.in")
    p.set_defaults(func=cmd_lock)
    return parser


def _expected_errors() -> tuple[type[Exception], ...]:
    """Errors that mean bad input or an unreachable store: one line, no traceback."""
    errors: list[type[Exception]] = [OSError, ValueError, KeyError]
    for module, name in (
        ("adaline_repro.params", "ParamsError"),
        ("adaline_repro.fetch", "FetchError"),
        ("adaline_repro.prepare", "PrepareError"),
        ("adaline_repro.train", "TrainError"),
    ):
        if module in sys.modules:
            errors.append(getattr(sys.modules[module], name))
    return tuple(errors)


def cmd_bench(args: argparse.Namespace) -> int:
    script = Path(__file__).resolve().parents[2] / "bench" / "bench.py"
    return subprocess.call([sys.executable, str(script), *args.extra])


_PASS_THROUGH = {"repro": cmd_repro, "test": cmd_test, "bench": cmd_bench, "dvc": cmd_dvc}


def _exit_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C: open MLflow runs end KILLED and temporary files are removed."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=os.environ.get("ADALINE_LOG_LEVEL", "WARNING"), format="%(levelname)s %(name)s: %(message)s"
    )
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in _PASS_THROUGH and not {"-h", "--help"} & set(argv[1:2]):
        # Everything after `repro`/`test` belongs to dvc/pytest, options included (argparse would eat them).
        args = argparse.Namespace(func=_PASS_THROUGH[argv[0]], extra=argv[1:])
    else:
        args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        return args.func(args)
    except _Fail as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    except Exception as exc:
        tracking = sys.modules.get("adaline_repro.tracking")
        if tracking is not None and isinstance(exc, tracking.TrackingError):
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_TRACKING
        if isinstance(exc, _expected_errors()):
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_INPUT
        raise


if __name__ == "__main__":
    sys.exit(main())

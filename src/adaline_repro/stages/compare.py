"""Compare stage: fail (exit EXIT_DIFFER, which stops `dvc repro`) when the backends differ, after logging
the execution so the difference can be inspected in MLflow."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from adaline_repro.comparison import BackendOutputs, Lecture, Report, compare, load_outputs, step_ratios
from adaline_repro.core import run_env
from adaline_repro.core.errors import EXIT_DIFFER, EXIT_OK
from adaline_repro.core.files import atomic_write_text, csv_text, float_texts, write_csv, write_json
from adaline_repro.core.params import Params, load_params
from adaline_repro.core.results import CompareFiles, ExecutionInputs, ResultDirs
from adaline_repro.stages import LOGGED, RESULTS, parser, run_stage, say


def write_outputs(params: Params, outputs: Sequence[BackendOutputs], files: CompareFiles, train: Path | None) -> Report:
    """Compare every backend's results (load_outputs of each, in train.backends' order), and hold every update
    to the lecture's, replayed on `train` (train.csv); write the report, the verdict and the plots' data."""
    report = compare(outputs, params.compare, Lecture.read(train, params.train.lr) if train else None)
    write_json(files.json, report.to_json())
    atomic_write_text(files.md, report.markdown(params.compare))
    write_json(files.verdict, report.verdict(outputs))
    atomic_write_text(files.loss_plot, loss_table(outputs, params.train.dtype))
    write_csv(files.diff_plot, ("step", "pair", "tol_used"), (
        (step, f"{a.backend}~{b.backend}", f"{used:.6g}")
        for a, b in itertools.combinations(outputs, 2)
        for step, used in step_ratios(a, b, params.compare)
    ))  # fmt: skip
    return report


def loss_table(outputs: Sequence[BackendOutputs], dtype: str) -> str:
    """Every backend's loss curve in one long table (epoch, backend, train_mse), its numbers written as the
    curve files write them: DVC draws it as one chart, a line per backend, with no backend named in
    dvc.yaml."""
    rows = [
        (epoch, o.backend, text) for o in outputs for epoch, text in enumerate(float_texts(o.curve, dtype), start=1)
    ]
    return csv_text(("epoch", "backend", "train_mse"), rows)


def stage(
    params_yaml: Path,
    dirs: ResultDirs,
    files: CompareFiles,
    inputs: ExecutionInputs,
    marker: Path,
    say: Callable[[str], None],
    verbose: bool = False,
) -> int:
    """The compare stage: write the reports; exit EXIT_DIFFER when the backends differ. One line when they
    agree (and the difference table with `verbose`, or when they differ; it is always in compare.md).

    dvc repro stops at a failing stage, before track: the execution is logged here first, figure included,
    so the difference can be inspected in MLflow. (A failing stage is never cached, so what this reads on
    that path need not be its deps.)
    """
    params = load_params(params_yaml)
    outputs = [load_outputs(b, dirs) for b in params.train.backends]
    report = write_outputs(params, outputs, files, inputs.train)
    if verbose or not report.passed:
        say(report.markdown(params.compare))
    if report.passed:
        say(f"compare: {report.line()} (see {files.md})")
        return EXIT_OK
    from adaline_repro.comparison import figure
    from adaline_repro.tracking import execution

    figure.draw(params.train.backends, dirs.curves, inputs.figure, report.divergence)
    say(execution.log_and_say(params, dirs, inputs, report, marker, stage="compare"))
    say(f"compare: FAILED: {report.failure_line()}")
    return EXIT_DIFFER


def main(argv: Sequence[str] | None = None) -> int:
    args = parser(
        "compare", "Fail when the backends differ (logging the execution first).", *RESULTS, "steps", "report-json",
        "report-md", "verdict", "loss-plot", "diff-plot", *LOGGED,
    ).parse_args(argv)  # fmt: skip
    dirs = ResultDirs(args.models, args.curves, args.predictions, args.metrics, args.steps)
    files = CompareFiles(args.report_json, args.report_md, args.verdict, args.loss_plot, args.diff_plot)
    inputs = ExecutionInputs(args.raw, args.train, args.test, args.figure)
    return stage(args.params, dirs, files, inputs, args.marker, say, verbose=run_env.verbose())


if __name__ == "__main__":
    sys.exit(run_stage(main))

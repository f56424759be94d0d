"""Compare stage: fail (exit EXIT_DIFFER, which stops `dvc repro`) when the backends differ, after logging
the execution so the difference can be inspected in MLflow."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from adaline_repro.agreement import BackendOutputs, Report, compare, failure_line, load_outputs
from adaline_repro.errors import EXIT_DIFFER, EXIT_OK
from adaline_repro.files import atomic_write_text, write_json
from adaline_repro.params import Params, load_params
from adaline_repro.replay import Lecture
from adaline_repro.results import ExecutionInputs, ResultDirs


def run(
    params: Params, outputs: list[BackendOutputs], report_json: Path, report_md: Path, train: Path | None = None
) -> Report:
    """Compare every backend's results (load_outputs of each, in train.backends' order); write
    reports/compare.json and compare.md. `train` (train.csv) is read only when a step diverges: the cause
    rules replay the lecture's updates on it."""
    report = compare(outputs, params.compare, Lecture(train, params.train.lr) if train else None)
    write_json(report_json, report.as_dict())
    atomic_write_text(report_md, report.markdown())
    return report


def stage(
    params_yaml: Path,
    dirs: ResultDirs,
    report_json: Path,
    report_md: Path,
    inputs: ExecutionInputs,
    marker: Path,
    say: Callable[[str], None],
) -> int:
    """The compare stage: write the reports; exit EXIT_DIFFER when the backends differ.

    dvc repro stops at a failing stage, before track: the execution is logged here first, figure included,
    so the difference can be inspected in MLflow. (A failing stage is never cached, so what this reads on
    that path need not be its deps.)
    """
    params = load_params(params_yaml)
    outputs = [load_outputs(b, dirs) for b in params.train.backends]
    report = run(params, outputs, report_json, report_md, inputs.train)
    summary = report.as_dict()
    say(report.markdown())
    if report.passed:
        return EXIT_OK
    from adaline_repro import figures
    from adaline_repro.tracking import execution

    figures.draw(params.train.backends, dirs.curves, inputs.figure, report.divergence)
    say(execution.logged_line(execution.log(params, dirs, inputs, summary, marker), params, summary))
    say(f"compare: FAILED: {failure_line(summary)}")
    return EXIT_DIFFER

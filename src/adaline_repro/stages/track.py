"""Track stage: draw the loss-curve figure and log the execution to the tracking store.

The verdict comes from reports/compare.json, which holds no tolerances: changing only the tolerances
re-runs compare alone, and the store is logged to again only when the verdict itself changes.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from adaline_repro.errors import EXIT_OK, ReproError
from adaline_repro.files import read_json
from adaline_repro.params import load_params
from adaline_repro.results import ExecutionInputs, ResultDirs
from adaline_repro.tracking import execution


def stage(
    params_yaml: Path,
    dirs: ResultDirs,
    report_json: Path,
    inputs: ExecutionInputs,
    marker: Path,
    say: Callable[[str], None],
) -> int:
    """The track stage: draw the loss-curve figure and log the execution to the tracking store.

    The figure is drawn in a second process while this one imports MLflow: a second or two each, and on
    two cores they overlap. It must exist before the parent run's artifacts are logged.
    """
    params = load_params(params_yaml)
    report = read_json(report_json)
    plot = subprocess.Popen(
        [sys.executable, "-m", "adaline_repro", "plot", "--params", str(params_yaml), "--curves", str(dirs.curves),
         "--out", str(inputs.figure)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        import adaline_repro.tracking.store  # noqa: F401  (the slow import this overlaps)
    finally:
        if plot.wait() != 0:
            raise FigureError(f"track: drawing {inputs.figure} failed (see the error above)", plot.returncode)
    say(execution.logged_line(execution.log(params, dirs, inputs, report, marker), params, report))
    return EXIT_OK


class FigureError(ReproError):
    """The figure process failed; it printed its own error (or traceback) first, and its exit code is ours."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code

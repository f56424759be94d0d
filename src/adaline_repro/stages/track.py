"""Track stage: draw the loss-curve figure and log the execution to the tracking store.

The verdict comes from reports/compare.json, which holds no tolerances: changing only the tolerances
re-runs compare alone, and the store is logged to again only when the verdict itself changes.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from adaline_repro.comparison import Report, figure
from adaline_repro.core.errors import EXIT_OK
from adaline_repro.core.files import read_json
from adaline_repro.core.params import load_params
from adaline_repro.core.results import ExecutionInputs, ResultDirs
from adaline_repro.stages import LOGGED, RESULTS, parser, run_stage, say
from adaline_repro.tracking import execution


def stage(
    params_yaml: Path,
    dirs: ResultDirs,
    report_json: Path,
    inputs: ExecutionInputs,
    marker: Path,
    say: Callable[[str], None],
) -> int:
    """The track stage: draw the figure (it is logged with the parent run), then log the execution."""
    params = load_params(params_yaml)
    report = Report.from_json(read_json(report_json))
    figure.draw(params.train.backends, dirs.curves, inputs.figure)
    say(execution.log_and_say(params, dirs, inputs, report, marker))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = parser("track", "Draw the loss-curve figure and log the execution to MLflow.", *RESULTS, "steps",
                  "report", *LOGGED).parse_args(argv)  # fmt: skip
    dirs = ResultDirs(args.models, args.curves, args.predictions, args.metrics, args.steps)
    inputs = ExecutionInputs(args.raw, args.train, args.test, args.figure)
    return stage(args.params, dirs, args.report, inputs, args.marker, say)


if __name__ == "__main__":
    sys.exit(run_stage(main))

"""`./pipeline dvc exp show`'s default view: what a user compares, in 120 columns.

DVC's own table has a column for every param, every dep's hash and every metric; at 2 cores' worth of
terminal it collapses most of them into `…`. Unless the user picks columns (`--keep`, `--drop`, or a
machine format), this view keeps the experiment, the compare verdict (reports/verdict.json: agree, the
largest difference in units of the tolerance, the accuracies and final train MSE the backends share),
train.lr and train.batch_size, and every other param an experiment changed (`--only-changed`); deps'
hashes and the per-backend metrics files (`dvc metrics show` lists those, a row each) are left out.
`--all-columns` (ours, not passed on) gives DVC's whole table. Piped, the table is laid out for WIDTH
columns (Rich would take 80 and fold most columns into `…`) unless COLUMNS says otherwise.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

ALL_COLUMNS = "--all-columns"
WIDTH = 120
_USER_PICKS = {"--keep", "--drop", "--json", "--csv", "--md", "--only-changed"}
KEEP = ("Experiment", "agree", "tol_used", "train_acc", "test_acc", "final_mse", r"train\.lr", r"train\.batch_size")


def arguments(dvc_args: list[str], root: Path) -> list[str]:
    """dvc_args (an `exp show` command line) with the default view's options added, unless the user chose."""
    if not sys.stdout.isatty():
        os.environ.setdefault("COLUMNS", str(WIDTH))
    if ALL_COLUMNS in dvc_args:
        return [a for a in dvc_args if a != ALL_COLUMNS]
    if any(a.split("=")[0] in _USER_PICKS for a in dvc_args):
        return dvc_args
    from adaline_repro.core.checkout import pipeline_paths

    # Deps are paths: a folder of results (`models`) or a file (`src/...`); a metric of a file whose key
    # another file has too is shown as `path:key`. Params and verdict keys have no slash.
    deps = [re.escape(folder) for folder in pipeline_paths(root).result_folders]
    drop = "|".join(["Created", ".*/.*", "largest_diff$", *deps])
    return [*dvc_args, "--only-changed", "--drop", drop, "--keep", "|".join(f"{k}$" for k in KEEP)]

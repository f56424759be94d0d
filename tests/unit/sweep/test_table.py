"""The results table is the same bytes whatever order the trials finished in, one row per trial in the grid's
order, with its verdict, its largest difference in tolerance units and the command that reproduces it."""

from __future__ import annotations

import csv
import io
import random

from adaline_repro.sweep.grid import Trial
from adaline_repro.sweep.table import frame, summary, table_text
from tests.unit.sweep.conftest import trial_record


def record(trial: Trial, lr: float, *, passed: bool = True, error: str | None = None):
    params = {"train": {"lr": lr, "backends": ["a", "b"]}}
    metrics = {"train_accuracy": 0.9, "test_accuracy": 0.8, "train_mse": 0.125}
    return trial_record(trial, params, {"a": metrics, "b": metrics}, passed=passed, ratio=0.25 if passed else 12.5,
                        error=error)  # fmt: skip


def grid():
    trials = [Trial((f"train.lr={lr}",)) for lr in (0.1, 0.2, 0.3)]
    records = [record(trials[0], 0.1), record(trials[1], 0.2, passed=False), record(trials[2], 0.3, error="boom")]
    return trials, {r.id: r for r in records}


def test_rows_follow_the_grid_whatever_order_the_records_came_in():
    trials, records = grid()
    expected = table_text(frame(trials, records))
    for seed in range(5):
        shuffled = list(records.items())
        random.Random(seed).shuffle(shuffled)  # noqa: S311
        assert table_text(frame(trials, dict(shuffled))) == expected


def test_each_row_has_its_verdict_difference_metrics_error_and_command():
    trials, records = grid()
    rows = list(csv.DictReader(io.StringIO(table_text(frame(trials, records)))))
    assert [r["train.lr"] for r in rows] == ["0.1", "0.2", "0.3"]
    assert [r["verdict"] for r in rows] == ["agree", "differ", "error"]
    assert [r["tolerance_ratio"] for r in rows] == ["0.25", "12.5", ""]
    assert rows[1]["first_divergence"] == "step 3 (epoch 1, batch 3)"
    assert rows[0]["b.train_mse"] == "0.125"
    assert rows[2]["error"] == "boom"
    assert rows[2]["command"] == "./pipeline dvc exp run -S train.lr=0.3"


def test_the_share_that_agrees_counts_only_trials_that_ran():
    trials, records = grid()
    assert summary(frame(trials, records)) == {"trials": 3, "agree": 1, "differ": 1, "error": 1, "agree_share": 0.5}

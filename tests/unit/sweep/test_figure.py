"""The agreement map groups trials by learning rate and minibatch size (or the grid's first two swept keys)
over every other swept value, and draws a PNG whatever the mix of agreeing, differing and failed trials."""

from __future__ import annotations

from adaline_repro.sweep import table
from adaline_repro.sweep.figure import agreement_map, axes_keys, cells
from adaline_repro.sweep.grid import Trial
from tests.unit.sweep.conftest import trial_record


def record(trial: Trial, lr: float, batch: int, seed: int, verdict: str):
    params = {"train": {"lr": lr, "batch_size": batch, "seed": seed, "backends": ["a"]}}
    if verdict == "error":
        return trial_record(trial, params, error="diverged")
    metrics = {"a": {"train_accuracy": 0.5, "test_accuracy": 0.75, "train_mse": 0.1}}
    passed = verdict == "agree"
    return trial_record(trial, params, metrics, passed=passed, ratio=0.5 if passed else 40.0)


def grid():
    """The results frame of eight trials, two seeds in each (lr, minibatch) cell: agreeing, failed, differing."""
    trials, records = [], {}
    outcome = {(0.1, 7): "agree", (0.1, 35): "agree", (1.0, 7): "error", (1.0, 35): "differ"}
    for (lr, batch), verdict in outcome.items():
        for seed in (1, 2):
            trial = Trial((f"train.seed={seed}", f"train.lr={lr}", f"train.batch_size={batch}"))
            trials.append(trial)
            records[trial.id] = record(trial, lr, batch, seed, verdict)
    return table.swept_keys(trials), table.frame(trials, records)


def test_learning_rate_and_minibatch_are_the_axes_when_swept_and_other_values_fold_into_cells():
    keys, results = grid()
    assert axes_keys(keys) == ("train.lr", "train.batch_size")
    rows_key, cols_key, found = cells(results, keys)
    assert (rows_key, cols_key) == ("train.lr", "train.batch_size")
    assert sorted(found.index) == [(0.1, 7), (0.1, 35), (1.0, 7), (1.0, 35)]
    assert found["trials"].to_dict() == dict.fromkeys(found.index, 2)
    assert found.loc[(1.0, 7), "ran"] == 0  # both failed
    assert found.loc[(0.1, 7), "share"] == 1.0
    assert found.loc[(1.0, 35), "share"] == 0.0
    assert found.loc[(1.0, 35), "worst"] == 40.0
    assert axes_keys(["train.seed", "prepare.seed"]) == ("train.seed", "prepare.seed")
    assert axes_keys(["train.seed"]) == ("train.seed", None)


def test_the_map_is_a_png_and_the_same_records_give_the_same_bytes():
    keys, results = grid()
    png = agreement_map(results, keys)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert agreement_map(results, keys) == png

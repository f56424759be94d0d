"""The agreement map groups trials by learning rate and minibatch size (or the grid's first two swept keys)
over every other swept value, and draws a PNG whatever the mix of agreeing, differing and failed trials."""

from __future__ import annotations

from adaline_repro.sweep.figure import agreement_map, axes_keys, cells
from adaline_repro.sweep.grid import Trial


def record(trial: Trial, lr: float, batch: int, seed: int, verdict: str) -> dict:
    base = {"id": trial.id, "params": {"train": {"lr": lr, "batch_size": batch, "seed": seed, "backends": ["a"]}}}
    if verdict == "error":
        return {**base, "error": "diverged"}
    metrics = {"a": {"train_accuracy": 0.5, "test_accuracy": 0.75, "train_mse": 0.1}}
    passed = verdict == "agree"
    return {**base, "error": None, "metrics": metrics, "compare": {"passed": passed, "first_divergence": None},
            "tolerance_ratio": 0.5 if passed else 40.0}  # fmt: skip


def grid() -> tuple[list[Trial], dict[str, dict]]:
    trials, records = [], {}
    outcome = {(0.1, 7): "agree", (0.1, 35): "agree", (1.0, 7): "error", (1.0, 35): "differ"}
    for (lr, batch), verdict in outcome.items():
        for seed in (1, 2):
            trial = Trial((f"train.seed={seed}", f"train.lr={lr}", f"train.batch_size={batch}"))
            trials.append(trial)
            records[trial.id] = record(trial, lr, batch, seed, verdict)
    return trials, records


def test_learning_rate_and_minibatch_are_the_axes_when_swept_and_other_values_fold_into_cells():
    trials, records = grid()
    assert axes_keys(trials) == ("train.lr", "train.batch_size")
    keys, rows, cols, groups = cells(trials, records)[:2], *cells(trials, records)[2:]
    assert keys == ("train.lr", "train.batch_size")
    assert (rows, cols) == ([0.1, 1.0], [7, 35])
    assert {where: len(group) for where, group in groups.items()} == {
        (0.1, 7): 2,
        (0.1, 35): 2,
        (1.0, 7): 2,
        (1.0, 35): 2,
    }
    assert axes_keys([Trial(("train.seed=1", "prepare.seed=2"))]) == ("train.seed", "prepare.seed")
    assert axes_keys([Trial(("train.seed=1",))]) == ("train.seed", None)


def test_the_map_is_a_png_and_the_same_records_give_the_same_bytes():
    trials, records = grid()
    png = agreement_map(trials, records)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert agreement_map(trials, dict(reversed(list(records.items())))) == png

"""The sweep's summary.md counts the verdicts, lists every differing trial with the locator's line, and
places the committed run's accuracy among the seeds at the lecture's settings, counting only those trials."""

from __future__ import annotations

from adaline_repro.sweep import table
from adaline_repro.sweep.grid import Trial
from adaline_repro.sweep.summary import markdown
from adaline_repro.sweep.trial import TrialRecord
from tests.unit.sweep.conftest import trial_record

RAW = {"train": {"lr": 0.01, "backends": ["a", "b"]}}
KEYS = ["train.lr", "train.seed"]


def record(
    trial: Trial, lr: float, seed: int, train_acc: float, *, passed: bool = True, error: str = ""
) -> TrialRecord:
    params = {"train": {"lr": lr, "seed": seed, "backends": ["a", "b"]}}
    metrics = {"train_accuracy": train_acc, "test_accuracy": 0.9, "train_mse": 0.1}
    return trial_record(trial, params, {"a": metrics, "b": metrics}, passed=passed, error=error or None)


def sweep():
    """The results frame of six trials: three at the lecture's learning rate, one differing, one failed."""
    specs = [(0.01, 1, 0.9), (0.01, 2, 0.95), (0.01, 3, 0.95), (0.5, 1, 0.5), (0.5, 2, 0.5), (9.0, 1, 0.0)]
    trials = [Trial((f"train.lr={lr}", f"train.seed={seed}")) for lr, seed, _ in specs]
    records = [record(t, lr, seed, acc) for t, (lr, seed, acc) in zip(trials[:4], specs, strict=False)]
    records += [record(trials[4], 0.5, 2, 0.5, passed=False), record(trials[5], 9.0, 1, 0.0, error="diverged")]
    return trials, table.frame(trials, {r.id: r for r in records})


def test_the_counts_and_each_differing_trial_with_its_first_divergence_and_cause():
    trials, results = sweep()
    text = markdown(results, KEYS, RAW, {})
    assert "6 trials: **4 agree** (80.0 % of those that ran), 1 differ, 1 failed" in text
    (row,) = [line for line in text.splitlines() if line.startswith(f"| {trials[4].id} |")]
    assert row == (f"| {trials[4].id} | train.lr=0.5 train.seed=2 | At step 3 (epoch 1, batch 3), b's update is 2 x "
                   "a's in every parameter; likely cause: b: missing zero_grad() (gradient accumulation). "
                   "|")  # fmt: skip


def test_the_committed_accuracy_is_placed_among_the_seeds_at_the_lecture_s_settings_only():
    _, results = sweep()
    committed = {"a": {"train_accuracy": 0.95, "test_accuracy": 0.95}}
    text = markdown(results, KEYS, RAW, committed)
    assert "## Accuracy across seeds at the lecture's settings (train.lr=0.01)" in text
    assert "3 trials over train.seed; a's accuracy" in text  # lr 0.5 and 9.0 are other settings
    assert "- **train_accuracy**: 90.00 % (1), 95.00 % (2)" in text
    assert "95.00 %: 1 of 3 trials score lower, 2 the same, 0 higher" in text
    assert "95.00 %: 3 of 3 trials score lower, 0 the same, 0 higher" in text  # test accuracy 90 % each


def test_a_sweep_without_the_lecture_s_settings_says_so():
    _, results = sweep()
    text = markdown(results, KEYS, {"train": {"lr": 0.2, "backends": ["a", "b"]}}, {})
    assert "No trial of this sweep ran at these settings." in text

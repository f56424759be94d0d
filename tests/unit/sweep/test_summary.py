"""The sweep's summary.md counts the verdicts, lists every differing trial with the locator's line, and
places the committed run's accuracy among the seeds at the lecture's settings, counting only those trials."""

from __future__ import annotations

from adaline_repro.sweep.grid import Trial
from adaline_repro.sweep.summary import markdown

RAW = {"train": {"lr": 0.01, "backends": ["a", "b"]}}
CAUSE = {"backend": "b", "rule": "zero_grad", "pair": ["a", "b"], "evidence": "-", "title": "missing zero_grad()"}


def record(trial: Trial, lr: float, seed: int, train_acc: float, *, passed: bool = True, error: str = "") -> dict:
    base = {"id": trial.id, "params": {"train": {"lr": lr, "seed": seed, "backends": ["a", "b"]}}}
    if error:
        return {**base, "error": error}
    metrics = {"train_accuracy": train_acc, "test_accuracy": 0.9, "train_mse": 0.1}
    backends = {"a": {"rows": [1], "update": [0.5, 0.5]}, "b": {"rows": [1], "update": [1.0, 1.0]}}
    divergence = None if passed else {"label": "step 3 (epoch 1, batch 3)", "step": 3, "backends": backends,
                                      "update_ratios": {"a~b": [2.0, 2.0]}, "likely_cause": [CAUSE]}  # fmt: skip
    return {**base, "error": None, "metrics": {"a": metrics, "b": metrics},
            "compare": {"passed": passed, "first_divergence": divergence}}  # fmt: skip


def sweep() -> tuple[list[Trial], dict[str, dict]]:
    specs = [(0.01, 1, 0.9), (0.01, 2, 0.95), (0.01, 3, 0.95), (0.5, 1, 0.5), (0.5, 2, 0.5), (9.0, 1, 0.0)]
    trials = [Trial((f"train.lr={lr}", f"train.seed={seed}")) for lr, seed, _ in specs]
    records = [record(t, lr, seed, acc) for t, (lr, seed, acc) in zip(trials[:4], specs, strict=False)]
    records += [record(trials[4], 0.5, 2, 0.5, passed=False), record(trials[5], 9.0, 1, 0.0, error="diverged")]
    return trials, {r["id"]: r for r in records}


def test_the_counts_and_each_differing_trial_with_its_first_divergence_and_cause():
    trials, records = sweep()
    text = markdown(trials, records, RAW, {})
    assert "6 trials: **4 agree** (80.0 % of those that ran), 1 differ, 1 failed" in text
    (row,) = [line for line in text.splitlines() if line.startswith(f"| {trials[4].id} |")]
    assert row == (f"| {trials[4].id} | train.lr=0.5 train.seed=2 | At step 3 (epoch 1, batch 3), b's update is 2 x "
                   "a's in every parameter; likely cause: b: missing zero_grad(). |")  # fmt: skip


def test_the_committed_accuracy_is_placed_among_the_seeds_at_the_lecture_s_settings_only():
    trials, records = sweep()
    committed = {"a": {"train_accuracy": 0.95, "test_accuracy": 0.95}}
    text = markdown(trials, records, RAW, committed)
    assert "## Accuracy across seeds at the lecture's settings (train.lr=0.01)" in text
    assert "3 trials over train.seed; a's accuracy" in text  # lr 0.5 and 9.0 are other settings
    assert "- **train_accuracy**: 90.00 % (1), 95.00 % (2)" in text
    assert "95.00 %: 1 of 3 trials score lower, 2 the same, 0 higher" in text
    assert "95.00 %: 3 of 3 trials score lower, 0 the same, 0 higher" in text  # test accuracy 90 % each


def test_a_sweep_without_the_lecture_s_settings_says_so():
    trials, records = sweep()
    text = markdown(trials, records, {"train": {"lr": 0.2, "backends": ["a", "b"]}}, {})
    assert "No trial of this sweep ran at these settings." in text

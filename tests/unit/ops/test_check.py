"""The check's verdict on a fresh run: identical bytes pass; other bytes pass only when the device or the
environment explains them and every value is within tolerance; anything else is drift."""

from __future__ import annotations

from adaline_repro.agreement import Difference, PairResult
from adaline_repro.ops import check
from adaline_repro.ops.byte_diff import FirstDifference
from adaline_repro.ops.fingerprint import Difference as EnvDifference

_MOVED = FirstDifference("models/manual.json", "key bias", "0.5", "0.50000006")


def _pair(passed: bool) -> PairResult:
    return PairResult("manual", "manual", (Difference("weights", 6e-8, 1e-7, "bias", passed),))


def test_the_same_bytes_are_identical_whatever_else_differs():
    assert check.outcome([], ["torch: 2.12.0 -> 2.13.0"], [_pair(False)]) == check.IDENTICAL


def test_other_bytes_explained_and_within_tolerance_are_within_tolerance():
    assert check.outcome([_MOVED], ["torch: 2.12.0 -> 2.13.0"], [_pair(True)]) == check.WITHIN_TOLERANCE


def test_other_bytes_that_nothing_explains_are_drift_even_within_tolerance():
    assert check.outcome([_MOVED], [], [_pair(True)]) == check.DRIFT


def test_explained_bytes_beyond_the_tolerance_are_drift():
    assert check.outcome([_MOVED], ["torch: 2.12.0 -> 2.13.0"], [_pair(False)]) == check.DRIFT


def test_another_device_or_a_byte_relevant_environment_difference_explains_bytes():
    """cuda against committed cpu results explains; a CPU model does not; a torch version does."""
    diffs = [EnvDifference("cpu.model", "AMD EPYC", "Intel Xeon"), EnvDifference("torch", "2.12.0", "2.13.0")]
    assert check.explanations("cuda", "cpu", diffs) == [
        "device: committed results from cpu, this run on cuda",
        "torch: 2.12.0 -> 2.13.0",
    ]
    assert check.explanations("cpu", "cpu", diffs[:1]) == []

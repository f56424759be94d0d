"""Trial records as a sweep's trials leave them, built small: params, metrics, a verdict (and where the
backends part when they differ), or an error."""

from __future__ import annotations

from adaline_repro.comparison import Divergence, PairResult, Report
from adaline_repro.comparison.agreement import Difference
from adaline_repro.sweep.grid import Trial
from adaline_repro.sweep.trial import TrialRecord

CAUSE = {"backend": "b", "rule": "missing_zero_grad", "pair": ["a", "b"], "evidence": "-", "title": ""}
DIVERGENCE = {
    "step": 3, "epoch": 1, "batch": 3, "batches_per_epoch": 7, "label": "step 3 (epoch 1, batch 3)",
    "parameters": ["weight[x]", "bias"], "apart": ["a~b"],
    "backends": {"a": {"rows": [1], "after": [1.0, 1.0], "before": [0.5, 0.5], "update": [0.5, 0.5]},
                 "b": {"rows": [1], "after": [1.5, 1.5], "before": [0.5, 0.5], "update": [1.0, 1.0]}},
    "update_ratios": {"a~b": [2.0, 2.0]}, "likely_cause": [CAUSE],
}  # fmt: skip


def trial_record(
    trial: Trial,
    params: dict,
    metrics: dict[str, dict[str, float]] | None = None,
    *,
    passed: bool = True,
    ratio: float | None = None,
    error: str | None = None,
) -> TrialRecord:
    """A finished trial (an agreeing or differing one, its first divergence at step 3), or a failed one."""
    if error:
        return TrialRecord(trial.id, trial.overrides, params=params, error=error)
    difference = Difference("train_mse", 0.0 if passed else 0.5, 0.0, "-", passed)
    divergence = None if passed else Divergence.from_json(DIVERGENCE)
    report = Report((PairResult("a", "b", (difference,)),), divergence, ratio)
    return TrialRecord(trial.id, trial.overrides, params=params, metrics=metrics or {}, report=report,
                       tolerance_ratio=ratio)  # fmt: skip

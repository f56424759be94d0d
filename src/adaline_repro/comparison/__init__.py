"""The comparison: whether results agree, and where and why they part.

- tolerance: the one rule for every float quantity and step (|a - b| <= atol + rtol * max(|a|, |b|)), and
  for an update held to a replay the same with rtol of the update's terms;
- agreement: two sets of results held to it, quantity by quantity (loss curve, weights, every update's
  parameters within tolerance; predictions and accuracies exactly);
- divergence: the first update step at which records part, and what each did there;
- causes: the rules that name why, in words; replay: the lecture's update, replayed in float64 from a
  record's own parameters (and every update held to it); search: which mechanism reproduces a suspect,
  tried in order from exact, schedules, optimizers and objectives (mechanisms: fitting one and its span);
- report: the verdict and its words, everywhere they reach (compare.json and .md, the stage's lines, the
  MLflow description, the check's and the sweep's summaries);
- figure: the loss curves and their differences, the first diverging step marked (matplotlib, imported
  only by what draws).

The compare stage and the check judge with it; neither reaches into its modules past this list.
"""

from adaline_repro.comparison.agreement import (
    BackendOutputs,
    PairResult,
    compare_pair,
    load_outputs,
    step_ratios,
    tolerance_ratio,
)
from adaline_repro.comparison.divergence import Divergence, first_divergence
from adaline_repro.comparison.replay import Lecture
from adaline_repro.comparison.report import Report, compare, likely_causes, markdown, sentence, summary

__all__ = [
    "BackendOutputs",
    "Divergence",
    "Lecture",
    "PairResult",
    "Report",
    "compare",
    "compare_pair",
    "first_divergence",
    "likely_causes",
    "load_outputs",
    "markdown",
    "sentence",
    "step_ratios",
    "summary",
    "tolerance_ratio",
]

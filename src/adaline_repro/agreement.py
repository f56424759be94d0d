"""Whether the backends agree: every pair, floats within tolerance, predictions and accuracies exactly, and
the report of it (reports/compare.json and .md). When they do not, divergence.py says from which update step
and why. The compare stage and the check both judge with this."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from adaline_repro import divergence, tolerance
from adaline_repro.files import read_csv, read_json
from adaline_repro.params import CompareParams
from adaline_repro.replay import Lecture
from adaline_repro.results import ResultDirs, Steps, parameter_names, read_curve, read_model, read_steps
from adaline_repro.tolerance import close

FLOAT_QUANTITIES = ("train_mse", "weights", "steps")  # steps: the parameters after every update
EXACT_QUANTITIES = ("predictions", "train_accuracy", "test_accuracy")
QUANTITIES = FLOAT_QUANTITIES + EXACT_QUANTITIES
# metrics/<backend>.json's keys -> reports/verdict.json's: other names, so that `dvc exp show` need not
# prefix either with its file to tell them apart.
_SHARED = {"train_accuracy": "train_acc", "test_accuracy": "test_acc", "train_mse": "final_mse"}


@dataclass(frozen=True)
class BackendOutputs:
    """Everything compare looks at for one backend."""

    backend: str
    device: str
    curve: np.ndarray  # (epochs,) train MSE
    weights: np.ndarray  # (n_features + 1,) weight..., bias
    weight_names: tuple[str, ...]
    predictions: tuple[tuple[str, int, int], ...]  # (split, row, prediction)
    metrics: dict[str, float]
    steps: Steps


@dataclass(frozen=True)
class Difference:
    quantity: str
    max_abs_diff: float | None  # None: not comparable (NaN or differing shapes)
    max_rel_diff: float | None
    at: str  # where the largest difference is: "epoch 7", "bias", "step 9 (epoch 2, batch 2) bias", "3 of 100 rows"
    passed: bool
    first_failure: str | None = None  # floats: the first place out of tolerance ("epoch 7")
    first_failure_diff: float | None = None  # and the absolute difference there

    def as_dict(self) -> dict:
        return {
            "at": self.at,
            "first_failure": self.first_failure,
            "first_failure_diff": self.first_failure_diff,
            "max_abs_diff": self.max_abs_diff,
            "max_rel_diff": self.max_rel_diff,
            "passed": self.passed,
        }


@dataclass(frozen=True)
class PairResult:
    a: str
    b: str
    differences: tuple[Difference, ...]

    @property
    def passed(self) -> bool:
        return all(d.passed for d in self.differences)


@dataclass(frozen=True)
class Report:
    pairs: tuple[PairResult, ...]
    tolerances: CompareParams
    divergence: dict | None  # divergence.Divergence.as_dict(): the first step at which parameters part
    tolerance_ratio: float | None = None  # the largest float difference in units of its tolerance (ratio())

    @property
    def passed(self) -> bool:
        return all(p.passed for p in self.pairs)

    def largest(self, quantity: str) -> float | None:
        """The largest difference of a quantity over all pairs; None when some pair is not comparable."""
        values = [d.max_abs_diff for p in self.pairs for d in p.differences if d.quantity == quantity]
        return None if any(v is None for v in values) else max(values, default=0.0)

    def as_dict(self) -> dict:
        """reports/compare.json: the verdict and every difference. The tolerances stay out (they are in
        params.yaml and compare.md), so a tolerance change that keeps the verdict leaves these bytes, and
        so the track stage downstream, untouched."""
        return {
            "passed": self.passed,
            "first_divergence": self.divergence,
            "largest_abs_diff": {q: self.largest(q) for q in QUANTITIES},
            "pairs": {
                f"{p.a}~{p.b}": {"passed": p.passed, **{d.quantity: d.as_dict() for d in p.differences}}
                for p in self.pairs
            },
        }

    def verdict(self, outputs: list[BackendOutputs]) -> dict:
        """reports/verdict.json, the compare stage's metrics file (what `dvc exp show` puts beside each
        experiment's params): the verdict, the largest difference in units of the tolerance and as a
        number in scientific form (DVC rounds 4e-08 to 0.0), and, when the backends agree, the accuracies
        and final train MSE they share (each backend's own are in metrics/<backend>.json)."""
        found = [(self.largest(q), q) for q in FLOAT_QUANTITIES]
        known = [(v, q) for v, q in found if v is not None]
        if len(known) < len(found):
            largest = "not comparable"
        else:
            value, quantity = max(known)
            largest = f"{value:.1e} {quantity}"
        summary: dict = {"agree": self.passed, "tol_used": self.tolerance_ratio, "largest_diff": largest}
        if self.passed and outputs:
            shared = outputs[0].metrics
            summary |= {short: shared[key] for key, short in _SHARED.items() if key in shared}
        return summary

    def line(self) -> str:
        """The compare stage's one line when the backends agree."""
        used = "?" if self.tolerance_ratio is None else f"{self.tolerance_ratio:.2g}"
        return f"the backends agree: the largest difference is {used} of its tolerance"

    def markdown(self) -> str:
        """compare.md. When a step diverges it leads with the student's sentence and the per-parameter
        evidence under it, then the table; otherwise the verdict, the table and "None"."""
        verdict = "PASSED: the backends agree" if self.passed else "FAILED: the backends differ"
        table = (
            f"**{verdict}** (floats within atol={self.tolerances.atol:g}, rtol={self.tolerances.rtol:g}; "
            f"predictions and accuracies exactly).\n\n{difference_table(self.as_dict())}"
        )
        if self.divergence:
            lead = f"{divergence.sentence(self.divergence)}\n\n{divergence.markdown(self.divergence)}"
            return f"# Backend comparison\n\n{lead}\n{table}"
        return f"# Backend comparison\n\n{table}\n{divergence.markdown(self.divergence)}"


def difference_table(report: dict) -> str:
    """The markdown table of reports/compare.json's differences, one row per pair and quantity."""
    lines = ["| pair | quantity | max abs diff | max rel diff | at | result |", "|---|---|---|---|---|---|"]
    for pair, quantities in report["pairs"].items():
        a, b = pair.split("~")
        for quantity in QUANTITIES:
            d = quantities[quantity]
            rel = _fmt(d["max_rel_diff"]) if quantity in FLOAT_QUANTITIES else "-"
            result = "pass" if d["passed"] else "FAIL"
            lines.append(f"| {a} ~ {b} | {quantity} | {_fmt(d['max_abs_diff'])} | {rel} | {d['at']} | {result} |")
    return "\n".join(lines) + "\n"


def _fmt(value: float | None) -> str:
    return "not comparable" if value is None else f"{value:.3g}"


class StepLabels:
    """`step 9 (epoch 2, batch 2) bias` for each value of a flattened Steps.params, made only when asked."""

    def __init__(self, steps: Steps) -> None:
        self.steps = steps

    def __getitem__(self, index: int) -> str:
        step, parameter = divmod(index, len(self.steps.names))
        return f"{self.steps.label(step)} {self.steps.names[parameter]}"


def compare_floats(
    quantity: str, a: np.ndarray, b: np.ndarray, labels: Sequence[str] | StepLabels, tol: CompareParams
) -> Difference:
    if a.shape != b.shape:
        return Difference(quantity, None, None, f"lengths {a.size} and {b.size}", False)
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        bad = int(np.flatnonzero(~(np.isfinite(a) & np.isfinite(b)))[0])
        return Difference(quantity, None, None, f"{labels[bad]} not finite", False, labels[bad])
    if not a.size:
        return Difference(quantity, 0.0, 0.0, "-", True)
    diff = np.abs(a - b)
    scale = np.maximum(np.abs(a), np.abs(b))
    rel = np.divide(diff, scale, out=np.zeros_like(diff), where=scale > 0)
    worst = int(np.argmax(diff))
    outside = np.flatnonzero(~close(a, b, tol))
    first = int(outside[0]) if outside.size else None
    at = labels[worst] if diff[worst] > 0 else "-"
    return Difference(
        quantity,
        float(diff[worst]),
        float(rel.max()),
        at,
        first is None,
        None if first is None else labels[first],
        None if first is None else float(diff[first]),
    )


def compare_exact_value(quantity: str, a: float, b: float) -> Difference:
    diff = abs(a - b)
    ok = a == b and math.isfinite(a)
    return Difference(quantity, diff if math.isfinite(diff) else None, None, "-", ok)


def compare_predictions(a: BackendOutputs, b: BackendOutputs) -> Difference:
    if [p[:2] for p in a.predictions] != [p[:2] for p in b.predictions]:
        return Difference("predictions", None, None, "different rows", False)
    mismatches = sum(pa[2] != pb[2] for pa, pb in zip(a.predictions, b.predictions, strict=True))
    return Difference(
        "predictions", float(mismatches), None, f"{mismatches} of {len(a.predictions)} rows", mismatches == 0
    )


def compare_pair(a: BackendOutputs, b: BackendOutputs, tol: CompareParams) -> PairResult:
    epochs = [f"epoch {i}" for i in range(1, max(a.curve.size, b.curve.size) + 1)]
    return PairResult(
        a.backend,
        b.backend,
        (
            compare_floats("train_mse", a.curve, b.curve, epochs, tol),
            compare_floats("weights", a.weights, b.weights, list(a.weight_names), tol),
            compare_floats("steps", a.steps.params.ravel(), b.steps.params.ravel(), StepLabels(a.steps), tol),
            compare_predictions(a, b),
            *(compare_exact_value(q, a.metrics[q], b.metrics[q]) for q in ("train_accuracy", "test_accuracy")),
        ),
    )


def compare(outputs: list[BackendOutputs], tol: CompareParams, lecture: Lecture | None = None) -> Report:
    """Every pair, in the order the backends are listed, and the first update step at which any part
    (`lecture`: the training data and learning rate, which let the cause rules replay updates)."""
    found = divergence.first_divergence({o.backend: o.steps for o in outputs}, tol, lecture)
    return Report(
        tuple(compare_pair(a, b, tol) for a, b in itertools.combinations(outputs, 2)),
        tol,
        None if found is None else found.as_dict(),
        tolerance_ratio(outputs, tol),
    )


def ratio(a: np.ndarray, b: np.ndarray, tol: CompareParams) -> np.ndarray:
    """|a - b| in units of its tolerance, elementwise (0 where equal): above 1 is outside it."""
    diff = np.abs(a - b)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(diff > 0, diff / tolerance.bound(a, b, tol), 0.0)


def tolerance_ratio(outputs: list[BackendOutputs], tol: CompareParams) -> float | None:
    """The largest backend difference in units of the compare tolerance, over every pair and float
    quantity (loss curve, weights, every update's parameters): above 1 the backends differ. None when some
    pair is not comparable (a value not finite, records of different lengths)."""
    worst = 0.0
    for a, b in itertools.combinations(outputs, 2):
        for x, y in ((a.curve, b.curve), (a.weights, b.weights), (a.steps.params, b.steps.params)):
            if x.shape != y.shape or not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
                return None
            worst = max(worst, float(ratio(x, y, tol).max(initial=0.0)))
    return worst


def step_ratios(a: BackendOutputs, b: BackendOutputs, tol: CompareParams) -> list[tuple[int, float]]:
    """(step, the largest parameter difference after that update in units of the tolerance) for every step
    both records hold with finite parameters: the per-step plot of a pair."""
    if a.steps.names != b.steps.names:
        return []  # other parameters: nothing to set side by side (compare reports the difference)
    n = min(len(a.steps.params), len(b.steps.params))
    x, y = a.steps.params[:n], b.steps.params[:n]
    finite = np.all(np.isfinite(x) & np.isfinite(y), axis=1)
    worst = ratio(np.where(np.isfinite(x), x, 0.0), np.where(np.isfinite(y), y, 0.0), tol).max(axis=1, initial=0.0)
    return [(step, float(worst[step])) for step in range(n) if finite[step]]


def load_outputs(backend: str, dirs: ResultDirs) -> BackendOutputs:
    """Read one backend's files, named after it in each of the result folders."""
    model = read_model(dirs.model(backend))
    _, rows = read_csv(dirs.prediction(backend))
    return BackendOutputs(
        backend=backend,
        device=model.device,
        curve=read_curve(dirs.curve(backend)),
        weights=np.append(model.weight, model.bias).astype(np.float64),
        weight_names=parameter_names(model.features),
        predictions=tuple((split, int(row), int(pred)) for split, row, _, pred in rows),
        metrics=read_json(dirs.metric(backend)),
        steps=read_steps(dirs.step(backend)),
    )


def failure_line(report: dict) -> str:
    """Why compare failed, in one line, from reports/compare.json: the quantities that differ, then the
    student's sentence (divergence.sentence: which backend, which step, what its update did, the cause)."""
    failed = [q for q in QUANTITIES if any(not pair[q]["passed"] for pair in report["pairs"].values())]
    why = divergence.sentence(report["first_divergence"])
    return f"the backends differ in {', '.join(failed)}; {why[0].lower()}{why[1:]}"

"""Whether two sets of results agree: floats within tolerance, predictions and accuracies exactly, with where
the largest and the first out-of-tolerance difference is. The compare stage holds every pair of backends to
this (report.py), the check each backend's fresh results to its committed ones."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from adaline_repro.comparison import tolerance
from adaline_repro.comparison.tolerance import close
from adaline_repro.core.files import read_csv, read_json
from adaline_repro.core.params import CompareParams
from adaline_repro.core.results import ResultDirs, Steps, parameter_names, read_curve, read_model, read_steps

FLOAT_QUANTITIES = ("train_mse", "weights", "steps")  # steps: the parameters after every update
EXACT_QUANTITIES = ("predictions", "train_accuracy", "test_accuracy")


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

    def to_json(self) -> dict:
        """Every field but the quantity, which the report keys it by."""
        return {k: v for k, v in asdict(self).items() if k != "quantity"}

    @classmethod
    def from_json(cls, quantity: str, data: dict) -> Difference:
        return cls(quantity=quantity, **data)


@dataclass(frozen=True)
class PairResult:
    a: str
    b: str
    differences: tuple[Difference, ...]

    @property
    def passed(self) -> bool:
        return all(d.passed for d in self.differences)

    def to_json(self) -> dict:
        """Quantity -> its difference."""
        return {d.quantity: d.to_json() for d in self.differences}

    @classmethod
    def from_json(cls, name: str, data: dict, quantities: Sequence[str]) -> PairResult:
        """`name` is `a~b`; `data` quantity -> difference (and "passed", which the differences imply)."""
        a, b = name.split("~")
        return cls(a, b, tuple(Difference.from_json(q, data[q]) for q in quantities))


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


def compare_steps(a: Steps, b: Steps, tol: CompareParams) -> Difference:
    """Every update's parameters; records of other parameters differ even where their flat lengths agree."""
    if a.names != b.names:
        return Difference("steps", None, None, f"parameters {', '.join(a.names)} and {', '.join(b.names)}", False)
    return compare_floats("steps", a.params.ravel(), b.params.ravel(), StepLabels(a), tol)


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
            compare_steps(a.steps, b.steps, tol),
            compare_predictions(a, b),
            *(compare_exact_value(q, a.metrics[q], b.metrics[q]) for q in ("train_accuracy", "test_accuracy")),
        ),
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

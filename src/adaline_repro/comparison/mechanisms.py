"""What a cause rule names: a mechanism (how the suspect computed its updates), with its parameters fitted
on the first updates after the diverging step and the updates it must then reproduce. The families live in
optimizers.py, schedules.py and objectives.py; causes.py tries them in order and names the first whose
mechanism reproduces every update of its span.

Fitting is scipy's least squares, in units of the compare tolerance; a fitted parameter is reported with the
fewest significant digits that still reproduce the span ("β1 0.9", not "β1 0.900000137"), so a student sees
the value they typed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from adaline_repro.comparison.replay import Predict, predicts, within
from adaline_repro.comparison.tolerance import bound
from adaline_repro.core.params import CompareParams
from adaline_repro.core.results import Steps


@dataclass(frozen=True)
class Mechanism:
    rule: str  # a key of causes.RULES
    predict: Predict
    evidence: str  # one sentence, with the fitted parameters
    steps: range  # the updates it must reproduce: the diverging one, those it was fitted on, and the ones after
    single: bool = False  # about one update (a skipped one): plain SGD may miss only that one

    def holds(self, rec: Steps, tol: CompareParams) -> bool:
        """Whether it reproduces every update of its span in `rec` (which must hold them all)."""
        return self.steps[-1] <= rec.updates and predicts(self.predict, rec, self.steps, within(tol))


def least_squares(
    make: Callable[[np.ndarray], Predict],
    start: Sequence[float],
    lower: Sequence[float],
    upper: Sequence[float],
    rec: Steps,
    fit: range,
    tol: CompareParams,
) -> np.ndarray | None:
    """The parameters θ for which make(θ) reproduces the updates `fit` best, in tolerance units (scipy's
    least squares, within the bounds); None when even the best misses one of them."""
    from scipy.optimize import least_squares as solve  # only on a failing compare, once a simpler rule failed

    targets = [rec.params[j] for j in fit]
    x0 = np.clip(np.asarray(start, dtype=np.float64), lower, upper)
    if not (np.isfinite(targets).all() and np.isfinite(x0).all()):
        return None  # nothing finite to fit (the non_finite rule's), or no size to start from

    def residuals(theta: np.ndarray) -> np.ndarray:
        predicted = make(theta)
        with np.errstate(all="ignore"):
            diffs = [
                (predicted(rec, j) - t) / bound(predicted(rec, j), t, tol) for j, t in zip(fit, targets, strict=True)
            ]
        out = np.concatenate(diffs)
        return np.where(np.isfinite(out), out, 1e12)

    found = solve(residuals, x0, bounds=(lower, upper), x_scale="jac", max_nfev=200)
    return found.x if np.abs(found.fun).max(initial=0.0) <= 1.0 else None


def simplest(
    make: Callable[[np.ndarray], Predict], theta: np.ndarray, rec: Steps, steps: range, tol: CompareParams
) -> np.ndarray | None:
    """θ with the fewest digits (1 to 6) whose mechanism still reproduces `steps`, else θ itself when it does;
    None when not even θ does. At each count, digits after the largest value's first come first (so that a
    fitted 4e-11 next to 3 becomes 0), then significant digits of each value."""
    scale = 10 ** np.floor(np.log10(np.abs(theta).max())) if np.abs(theta).max() > 0 else 1.0
    for digits in range(1, 7):
        for rounded in (np.round(theta / scale, digits - 1) * scale,
                        np.array([float(f"{v:.{digits}g}") for v in theta])):  # fmt: skip
            rounded = np.array([float(f"{v:.{digits + 1}g}") for v in rounded])  # 0.30000000000000004 -> 0.3
            if predicts(make(rounded), rec, steps, within(tol)):
                return rounded
    return theta if predicts(make(theta), rec, steps, within(tol)) else None


def linear(columns: Sequence[np.ndarray], target: Sequence[np.ndarray]) -> np.ndarray | None:
    """The coefficients c for which sum_i c_i columns[i] best equals target, by least squares over the
    stacked updates (each a (steps, parameters) array); None when they cannot be told apart."""
    a = np.stack([np.concatenate(list(c)) for c in columns], axis=1)
    b = np.concatenate(list(target))
    with np.errstate(all="ignore"):
        if not (np.isfinite(a).all() and np.isfinite(b).all()):
            return None
        coef, _, rank, _ = np.linalg.lstsq(a, b, rcond=None)
    return coef if rank == a.shape[1] else None


def num(v: float) -> str:
    """A fitted parameter as simplest() left it."""
    return f"{v:.6g}"

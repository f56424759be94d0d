"""What a cause rule names: a mechanism (how the suspect computed its updates), with its parameters fitted
on the first updates after the diverging step and the updates it must then reproduce. The families live in
exact.py, schedules.py, optimizers.py and objectives.py; search.py tries them in order and names the first
whose mechanism reproduces every update of its span.

Fitting is least squares in units of the tolerance: scipy's for the optimizers, whose parameters enter
nonlinearly, exact linear least squares (`linear`) where they enter linearly. A fitted parameter is
reported rounded ("β1 0.9", not "β1 0.900000137": the value the student typed) only where the rounded
value reproduces the span about as well as the fitted one (`simplest`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from adaline_repro.comparison.replay import Predict, gap, predicts
from adaline_repro.comparison.tolerance import update_bound
from adaline_repro.core.params import CompareParams
from adaline_repro.core.results import Steps


@dataclass(frozen=True)
class Mechanism:
    rule: str  # a key of causes.RULES
    predict: Predict
    evidence: str  # one sentence, with the fitted parameters
    steps: range  # the updates it must reproduce: the diverging one, those it was fitted on, and the ones after
    fitted: int  # the last update its parameters were fitted on (the diverging one, where it has none)
    single: bool = False  # about one update (a skipped one): plain SGD may miss only that one

    def holds(self, rec: Steps, tol: CompareParams) -> bool:
        """Whether it reproduces every update of its span in `rec` (which must hold them all)."""
        return self.steps[-1] <= rec.updates and predicts(self.predict, rec, self.steps, tol)


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

    x0 = np.clip(np.asarray(start, dtype=np.float64), lower, upper)
    if not (np.isfinite(rec.params[fit.start - 1 : fit.stop]).all() and np.isfinite(x0).all()):
        return None  # nothing finite to fit (the non_finite rule's), or no size to start from

    def residuals(theta: np.ndarray) -> np.ndarray:
        predict = make(theta)
        with np.errstate(all="ignore"):
            out = []
            for j in fit:
                before, predicted, after = rec.params[j - 1], predict(rec, j), rec.params[j]
                out.append((predicted - after) / update_bound(before, predicted, after, tol))
            flat = np.concatenate(out)
        return np.where(np.isfinite(flat), flat, 1e12)

    found = solve(residuals, x0, bounds=(lower, upper), x_scale="jac", max_nfev=200)
    return found.x if np.abs(found.fun).max(initial=0.0) <= 1.0 else None


def simplest(
    make: Callable[[np.ndarray], Predict], theta: np.ndarray, rec: Steps, steps: range, tol: CompareParams
) -> np.ndarray | None:
    """θ with fewer digits (1 to 6) where that reproduces `steps` nearly as well as θ (within half the margin
    θ leaves to the tolerance; at all, where θ, fitted on a few updates, misses the later ones), else θ when
    it reproduces them; None when neither does. At each count, digits after the largest value's first come
    first (so that a fitted 4e-11 next to 3 becomes 0), then each value's own."""
    fitted = gap(make(theta), rec, steps, tol)
    largest = np.abs(theta).max()
    scale = 10 ** np.floor(np.log10(largest)) if largest > 0 else 1.0
    for digits in range(1, 7):
        for rounded in (np.round(theta / scale, digits - 1) * scale,
                        np.array([float(f"{v:.{digits}g}") for v in theta])):  # fmt: skip
            rounded = np.array([float(f"{v:.{digits + 1}g}") for v in rounded])  # 0.30000000000000004 -> 0.3
            if gap(make(rounded), rec, steps, tol) <= (1 + min(fitted, 1.0)) / 2:
                return rounded
    return theta if fitted <= 1 else None


def linear(columns: Sequence[Sequence[np.ndarray]], target: Sequence[np.ndarray]) -> np.ndarray | None:
    """The coefficients c for which sum_i c_i columns[i] best equals target, by least squares over the
    stacked updates (one array per update each); None when they cannot be told apart."""
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

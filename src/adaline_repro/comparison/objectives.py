"""What the update descends, other than the lecture's mean squared error over the whole minibatch: targets
transformed (recoded to ±1, scaled, shifted), another loss (L1, Huber, SmoothL1), the gradient divided by
the nominal minibatch size instead of the rows present, and rows of the minibatch left out.

Each mechanism's parameters enter its update linearly once the rows are known (a, b of the targets a y + b;
Huber's δ once it is known which residuals it clips), so they are fitted exactly by linear least squares
(mechanisms.linear) on the first updates after the diverging step, and must then reproduce the span.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from adaline_repro.comparison.mechanisms import Mechanism, linear, num, simplest
from adaline_repro.comparison.replay import Lecture, Predict, factor, reproduces, window
from adaline_repro.core.params import CompareParams
from adaline_repro.core.results import Steps

Residuals = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (residuals y - yhat, targets) -> what x^T multiplies


def descent(lecture: Lecture, weights: Residuals) -> Predict:
    """An update p + lr / n * x^T weights(y - x p, y): the lecture's is weights = 2 (y - x p)."""

    def predict(rec: Steps, j: int) -> np.ndarray:
        xb, yb = lecture.batch(rec.rows[j])
        before = rec.params[j - 1]
        return before + lecture.lr / len(yb) * (xb.T @ weights(yb - xb @ before, yb))

    return predict


def targets(lecture: Lecture, rec: Steps, k: int, name: str, tol: CompareParams) -> Iterator[Mechanism]:
    """Targets a y + b: recoded to ±1 (2y - 1), scaled (a y) or shifted (y + b)."""
    fit = range(k, min(k + 2, rec.updates + 1))
    columns: list[list[np.ndarray]] = [[], []]
    seen = []
    for j in fit:  # p_j - p_(j-1) + 2 lr / n x^T x p_(j-1) = 2 lr / n x^T (a y + b)
        xb, yb = lecture.batch(rec.rows[j])
        scale = 2 * lecture.lr / len(yb)
        columns[0].append(scale * xb.T @ yb)
        columns[1].append(scale * xb.sum(axis=0))
        seen.append(rec.params[j] - rec.params[j - 1] + scale * xb.T @ (xb @ rec.params[j - 1]))
    coef = linear(columns, seen)
    steps = window(rec, k, fit[-1])
    if coef is None:
        return
    make = lambda t: descent(lecture, lambda r, y: 2 * (r + (t[0] - 1) * y + t[1]))  # noqa: E731
    theta = simplest(make, coef, rec, steps, tol)
    if theta is None:
        return
    a, b = theta
    what = f"{num(a)} y + {num(b)}"
    if (a, b) == (2, -1):
        what = "recoded to ±1 (2y - 1, as a perceptron's labels)"
    elif b == 0 or a == 1:
        what = f"scaled by {num(a)}" if b == 0 else f"shifted by {num(b)}"
    yield Mechanism("targets", make(theta), f"{name} trains on targets {what} instead of the 0/1 labels", steps,
                    fit[-1])  # fmt: skip


def losses(lecture: Lecture, rec: Steps, k: int, name: str, tol: CompareParams) -> Iterator[Mechanism]:
    """L1 (torch.nn.L1Loss), Huber with its delta (HuberLoss) and SmoothL1 with its beta (SmoothL1Loss)."""
    steps = window(rec, k)
    yield Mechanism("loss_function", descent(lecture, lambda r, y: np.sign(r)),
                    f"{name}'s loss is the mean absolute error (torch.nn.L1Loss)", steps, k)  # fmt: skip
    fit = _until_clipped(lecture, rec, k, tol)
    steps = window(rec, k, fit[-1])
    for loss, (setting, clip, parts) in CLIPPED.items():
        delta = _clip_point(lecture, rec, fit, parts)
        if delta is None:
            continue
        make = lambda t, clip=clip: descent(lecture, lambda r, y: clip(r, t[0]))  # noqa: E731
        theta = simplest(make, np.array([delta]), rec, steps, tol)
        if theta is not None:
            what = f"torch.nn.{loss}({setting}={num(theta[0])})"
            yield Mechanism("loss_function", make(theta), f"{name}'s loss is {what}, not the MSE", steps, fit[-1])


# The losses that clip residuals at delta: loss -> (its setting, what x^T multiplies in its update at delta
# (the MSE's is 2 r), and the parts of that once it is known which rows delta clips: then the update is linear
# in u, Huber's clipped rows giving u sign(r) with u = delta, SmoothL1's others u r with u = 1 / beta: (the
# part without u, the part times u, delta from u)).
CLIPPED = {
    "HuberLoss": ("delta", lambda r, d: np.clip(r, -d, d),
                  (lambda r, c: np.where(c, 0, r), lambda r, c: np.where(c, np.sign(r), 0), lambda u: u)),
    "SmoothL1Loss": ("beta", lambda r, d: np.clip(r / d, -1, 1),
                     (lambda r, c: np.where(c, np.sign(r), 0), lambda r, c: np.where(c, 0, r),
                      lambda u: 1 / u if u else -1.0)),
}  # fmt: skip


def _until_clipped(lecture: Lecture, rec: Steps, k: int, tol: CompareParams) -> range:
    """Step k to the first update that step k's factor on the lecture's does not give: while no residual
    exceeds its delta, a Huber loss is the MSE halved, and delta shows only once one does."""
    scaled = lecture.sgd(factor(lecture, rec, k) or 0.0)
    later = next((j for j in window(rec, k, epochs=2) if j > k and not reproduces(scaled, rec, j, tol)), k + 1)
    return range(k, min(later, rec.updates) + 1)


def _clip_point(lecture: Lecture, rec: Steps, fit: range, parts: tuple[Callable, ...]) -> float | None:
    """The delta whose loss gives the fit's updates, tried in each gap between neighbouring |residuals| (where
    the rows it clips are fixed and the update linear); None when no delta that clips some residual fits."""
    fixed, per_unit, delta_of = parts
    batches = [(lecture.batch(rec.rows[j]), rec.params[j - 1], rec.params[j]) for j in fit]
    sizes = np.unique(np.concatenate([np.abs(yb - xb @ p) for (xb, yb), p, _ in batches]))
    for low, high in zip(np.concatenate([[0.0], sizes[:-1]]), sizes, strict=True):
        seen, unit = [], []
        for (xb, yb), p, after in batches:
            r = yb - xb @ p
            clipped = np.abs(r) >= high
            scale = lecture.lr / len(yb) * xb.T
            seen.append(after - p - scale @ fixed(r, clipped))
            unit.append(scale @ per_unit(r, clipped))
        coef = linear([unit], seen)
        delta = None if coef is None else delta_of(float(coef[0]))
        if delta is not None and delta > 0 and low <= delta <= high:
            return delta
    return None


def nominal_batch(lecture: Lecture, rec: Steps, k: int, name: str, tol: CompareParams) -> Iterator[Mechanism]:
    """The gradient summed over the rows present and divided by the nominal minibatch size."""
    c, present = factor(lecture, rec, k), len(rec.rows[k])
    if c is None or c <= 0 or c >= 1:
        return
    nominal = round(present / c)
    steps = window(rec, k, epochs=2)  # to the next epoch's short minibatch, a second update it must explain
    make = lecture.scaled(lambda rec, j: len(rec.rows[j]) / nominal)
    sizes = {len(rec.rows[j]) for j in steps}  # all alike: a learning rate's factor, not this
    if len(sizes) > 1 and nominal >= max(sizes):
        yield Mechanism("nominal_batch", make, (
            f"{name} divides the minibatch's gradient by the nominal size {nominal}, not by the {present} rows "
            f"present at {rec.label(k)} (a summed loss divided by batch_size)"), steps, k)  # fmt: skip


def rows_left_out(lecture: Lecture, rec: Steps, k: int, name: str, tol: CompareParams) -> Iterator[Mechanism]:
    """Rows of every minibatch left out of its update, by their place in it (a slice one short, or one row):
    averaged over the rows kept, or over all of them (the left-out rows' terms zeroed). A place is kept per
    minibatch, so an epoch's shorter last one loses the same places."""
    n = len(rec.rows[k])
    places = [(f"its first {_rows(m)}", lambda size, m=m: np.arange(m, size)) for m in range(1, n)]
    places += [(f"its last {_rows(m)}", lambda size, m=m: np.arange(max(size - m, 0))) for m in range(1, n)]
    places += [(f"its row {i + 1}", lambda size, i=i: np.delete(np.arange(size), i) if i < size else np.arange(size))
               for i in range(1, n - 1)]  # fmt: skip
    steps = window(rec, k)
    for words, kept in places:
        for over_all in (False, True):
            make = _subset(lecture, kept, over_all)
            if Mechanism("rows_left_out", make, "", steps, k).holds(rec, tol):
                over = "all the minibatch's rows" if over_all else "the rows kept"
                yield Mechanism("rows_left_out", make, (f"{name} leaves {words} out of every minibatch's update, "
                                                        f"averaging over {over}"), steps, k)  # fmt: skip
                return


def _rows(m: int) -> str:
    return "row" if m == 1 else f"{m} rows"


def _subset(lecture: Lecture, kept: Callable[[int], np.ndarray], over_all: bool) -> Predict:
    """The lecture's update over the rows kept(minibatch size) of each minibatch, by their place."""

    def predict(rec: Steps, j: int) -> np.ndarray:
        rows = rec.rows[j]
        part = tuple(np.asarray(rows)[kept(len(rows))].tolist())
        xb, yb = lecture.batch(part)
        before = rec.params[j - 1]
        n = len(rows) if over_all else max(len(part), 1)
        return before + 2 * lecture.lr / n * (xb.T @ (yb - xb @ before))

    return predict

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
from adaline_repro.comparison.replay import FOLLOWING, Lecture, Predict, factor, window, within
from adaline_repro.core.params import CompareParams
from adaline_repro.core.results import Steps

Residuals = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (residuals y - yhat, targets) -> what x^T multiplies


def descent(lecture: Lecture, weights: Residuals, scale: float = 1.0) -> Predict:
    """An update p + lr * scale / n * x^T weights(y - x p, y): the lecture's is weights = 2 (y - x p)."""

    def predict(rec: Steps, j: int) -> np.ndarray:
        xb, yb = lecture.batch(rec.rows[j])
        before = rec.params[j - 1]
        return before + lecture.lr * scale / len(yb) * (xb.T @ weights(yb - xb @ before, yb))

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
    if coef is None or steps[-1] - fit[-1] < FOLLOWING:
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
    yield Mechanism("targets", make(theta), f"{name} trains on targets {what} instead of the 0/1 labels", steps)


def losses(lecture: Lecture, rec: Steps, k: int, name: str, tol: CompareParams) -> Iterator[Mechanism]:
    """L1 (torch.nn.L1Loss), Huber with its δ (HuberLoss) and SmoothL1 with its β (SmoothL1Loss)."""
    steps = window(rec, k)
    l1 = descent(lecture, lambda r, y: np.sign(r))
    if Mechanism("loss_function", l1, "", steps).holds(rec, tol):
        yield Mechanism("loss_function", l1, f"{name}'s loss is the mean absolute error (torch.nn.L1Loss)", steps)
    fit = _until_clipped(lecture, rec, k, tol)
    steps = window(rec, k, fit[-1])
    if steps[-1] - fit[-1] < FOLLOWING:
        return
    for loss, clip in CLIPS.items():
        delta = _clip_point(lecture, rec, fit, loss)
        if delta is None:
            continue
        make = lambda t, clip=clip: descent(lecture, lambda r, y: clip(r, t[0]))  # noqa: E731
        theta = simplest(make, np.array([delta]), rec, steps, tol)
        if theta is not None:
            what = f"torch.nn.{loss}={num(theta[0])})"
            yield Mechanism("loss_function", make(theta), f"{name}'s loss is {what}, not the MSE", steps)


CLIPS = {  # the loss -> what x^T multiplies in its update at δ (the MSE's is 2 r)
    "HuberLoss(delta": lambda r, d: np.clip(r, -d, d),
    "SmoothL1Loss(beta": lambda r, d: np.clip(r / d, -1, 1),
}
# Once it is known which rows a δ clips, the update is linear in u: Huber's clipped rows give u sign(r) with
# u = δ, SmoothL1's others u r with u = 1 / β. loss -> (the part without u, the part times u, δ from u)
_PARTS = {
    "HuberLoss(delta": (lambda r, c: np.where(c, 0, r), lambda r, c: np.where(c, np.sign(r), 0), lambda u: u),
    "SmoothL1Loss(beta": (lambda r, c: np.where(c, np.sign(r), 0), lambda r, c: np.where(c, 0, r),
                          lambda u: 1 / u if u else -1.0),
}  # fmt: skip


def _until_clipped(lecture: Lecture, rec: Steps, k: int, tol: CompareParams) -> range:
    """Step k to the first update that step k's factor on the lecture's does not give: while no residual
    exceeds its delta, a Huber loss is the MSE halved, and delta shows only once one does."""
    c = factor(lecture, rec, k)
    scaled, ok = lecture.sgd(c or 0.0), within(tol)
    later = next((j for j in window(rec, k, epochs=2) if j > k and not ok(scaled(rec, j), rec.params[j])), k + 1)
    return range(k, min(later, rec.updates) + 1)


def _clip_point(lecture: Lecture, rec: Steps, fit: range, loss: str) -> float | None:
    """The δ whose loss gives the fit's updates, tried in each gap between neighbouring |residuals| (where the
    rows it clips are fixed and the update linear); None when no δ that clips some residual fits."""
    fixed, per_unit, delta_of = _PARTS[loss]
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
    if len(sizes) > 1 and nominal >= max(sizes) and Mechanism("nominal_batch", make, "", steps).holds(rec, tol):
        yield Mechanism("nominal_batch", make, (
            f"{name} divides the minibatch's gradient by the nominal size {nominal}, not by the {present} rows "
            f"present at {rec.label(k)} (a summed loss divided by batch_size)"), steps)  # fmt: skip


def rows_left_out(lecture: Lecture, rec: Steps, k: int, name: str, tol: CompareParams) -> Iterator[Mechanism]:
    """Rows of every minibatch left out of its update, by their place in it (a slice one short, or one row):
    averaged over the rows kept, or over all of them (the left-out rows' terms zeroed)."""
    n = len(rec.rows[k])
    places = [(f"its first {m} rows", slice(m, None)) for m in range(1, n)]
    places += [(f"its last {m} rows", slice(None, -m)) for m in range(1, n)]
    places += [(f"its row {i + 1}", np.delete(np.arange(n), i)) for i in range(1, n - 1)]
    steps = window(rec, k)
    for words, kept in places:
        for over_all in (False, True):
            make = _subset(lecture, kept, over_all)
            if Mechanism("rows_left_out", make, "", steps).holds(rec, tol):
                over = "all the minibatch's rows" if over_all else "the rows kept"
                words = f"{name} leaves {words.replace('1 rows', 'row')} out of every minibatch's update"
                yield Mechanism("rows_left_out", make, f"{words}, averaging over {over}", steps)
                return


def _subset(lecture: Lecture, kept: slice | np.ndarray, over_all: bool) -> Predict:
    def predict(rec: Steps, j: int) -> np.ndarray:
        rows = rec.rows[j]
        part = tuple(np.asarray(rows)[kept].tolist()) if len(rows) > 1 else rows
        xb, yb = lecture.batch(part)
        before = rec.params[j - 1]
        n = len(rows) if over_all else max(len(part), 1)
        return before + 2 * lecture.lr / n * (xb.T @ (yb - xb @ before))

    return predict

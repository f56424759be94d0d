"""The lecture's update replayed from a step record, in float64: plain minibatch SGD on ADALINE's MSE (the
manual backend's formula, dL/dw = -2/n x^T (y - yhat)), the oracle that holds every update of a record to
it, and what the mechanisms of the cause rules are made of (mechanisms.py, optimizers.py, schedules.py,
objectives.py). A rule names a cause only when its mechanism, started from the suspect's own parameters
before each update, reproduces the suspect's parameters after it, within the compare tolerances, at the
diverging step and at the following ones (docs/divergence.md, "A cause must predict").
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from adaline_repro.comparison.tolerance import close_update, update_ratio
from adaline_repro.core.params import CompareParams
from adaline_repro.core.results import Steps, Table, read_table

Predict = Callable[[Steps, int], np.ndarray]  # the parameters after update j, from the record's before j


@dataclass(frozen=True)
class Lecture:
    """The training table and the learning rate: all plain SGD needs to replay an update."""

    table: Table
    lr: float
    _cache: dict[tuple[int, str], tuple[Steps, object]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def read(cls, train: Path, lr: float) -> Lecture:
        return cls(read_table(train), lr)

    @functools.cached_property
    def _data(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each raw-table row's position in the table (-1: not in it), indexed by the row's number, and x with
        a column of ones (the bias's input) and y, in float64."""
        rows = self.table.rows
        position = np.full(int(rows.max(initial=-1)) + 1, -1, dtype=np.int64)
        position[rows] = np.arange(len(rows))
        x = np.hstack([self.table.x.astype(np.float64), np.ones((len(self.table.y), 1))])
        return position, x, self.table.y.astype(np.float64)

    def _positions(self, rows: np.ndarray) -> np.ndarray:
        """The table positions of raw-table rows (-1 for a row the table does not hold)."""
        position = self._data[0]
        inside = (rows >= 0) & (rows < len(position))
        return np.where(inside, position[np.where(inside, rows, 0)], -1)

    def _flat(self, rec: Steps) -> tuple[np.ndarray, np.ndarray]:
        """The table positions of every minibatch's rows, one after the other, and each update's minibatch
        size: read once per record (the record holds them as tuples, costly to walk at 14,000 updates)."""
        return self._kept(rec, "flat", lambda: (
            self._positions(np.fromiter(itertools.chain.from_iterable(rec.rows), dtype=np.int64)),
            np.fromiter((len(r) for r in rec.rows[1:]), dtype=np.int64, count=rec.updates)))  # fmt: skip

    def _kept(self, rec: Steps, what: str, make: Callable[[], object]) -> object:
        """make(), computed once per record and kind (the record is kept with it, so its id stays its own)."""
        key = (id(rec), what)
        kept = self._cache.get(key)
        if kept is None or kept[0] is not rec:
            kept = self._cache[key] = (rec, make())
        return kept[1]

    def covers(self, rec: Steps) -> bool:
        """Whether every minibatch of the record is rows of this table, with its parameters' count."""
        return len(rec.names) == self._data[1].shape[1] and bool((self._flat(rec)[0] >= 0).all())

    def batch(self, rows: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """The minibatch's inputs with the bias's 1 (n, parameters) and targets (n,), in the order given."""
        _, x, y = self._data
        at = self._positions(np.asarray(rows, dtype=np.int64))
        return x[at], y[at]

    def gradient(self, params: np.ndarray, rows: tuple[int, ...]) -> np.ndarray:
        """The MSE gradient over the minibatch at `params` (weights..., bias)."""
        xb, yb = self.batch(rows)
        with np.errstate(all="ignore"):  # parameters that overflowed give NaN: the non_finite rule says so
            return -2.0 / len(yb) * (xb.T @ (yb - xb @ params))

    def history(self, rec: Steps) -> np.ndarray:
        """gradients(rec), computed once per record: what an optimizer's state is built from."""
        return self._kept(rec, "gradients", lambda: self.gradients(rec))

    def gradients(self, rec: Steps) -> np.ndarray:
        """(updates + 1, parameters): row j the MSE gradient of update j at the record's parameters before it
        (row 0 zeros), for every update at once: one matrix product over all the minibatches' rows."""
        at, sizes = self._flat(rec)
        _, x, y = self._data
        xb, yb = x[at], y[at]
        out = np.zeros((rec.updates + 1, len(rec.names)))
        before = np.repeat(rec.params[:-1], sizes, axis=0)  # each row's update starts from these
        full = sizes > 0  # an empty minibatch's mean is NaN, as gradient() gives it
        with np.errstate(all="ignore"):
            weighted = xb * (yb - np.einsum("ij,ij->i", xb, before))[:, None]
            sums = np.add.reduceat(weighted, (np.cumsum(sizes) - sizes)[full], axis=0) if full.any() else 0.0
            out[1:][full] = -2.0 / sizes[full, None] * sums
            out[1:][~full] = np.nan
        return out

    def gaps(self, rec: Steps, tol: CompareParams) -> np.ndarray:
        """(updates,): how far each update of the record is from the lecture's, replayed from the record's own
        parameters before it, in units of the tolerance (tolerance.update_ratio, the largest over the
        parameters): above 1, not the lecture's."""
        before, after = rec.params[:-1], rec.params[1:]
        with np.errstate(all="ignore"):
            replayed = before - self.lr * self.gradients(rec)[1:]
        return update_ratio(before, replayed, after, tol).max(axis=1, initial=0.0)

    def departure(self, rec: Steps, tol: CompareParams) -> int | None:
        """The first update the lecture's does not give within `tol` (None: every update is the lecture's)."""
        apart = np.flatnonzero(self.gaps(rec, tol) > 1)
        return int(apart[0]) + 1 if apart.size else None

    # --- mechanisms: each gives the parameters after update j from the record's own before it ---------

    def sgd(self, factor: float = 1.0, per_row: bool = False) -> Predict:
        """Plain SGD with the learning rate times `factor` (per_row: times the minibatch's size, a loss that
        sums over the minibatch)."""

        def predict(rec: Steps, j: int) -> np.ndarray:
            scale = factor * (len(rec.rows[j]) if per_row else 1)
            return rec.params[j - 1] - scale * self.lr * self.gradient(rec.params[j - 1], rec.rows[j])

        return predict

    def scaled(self, factors: Callable[[Steps, int], float | np.ndarray]) -> Predict:
        """Plain SGD with update j times factors(rec, j): a number, or one per parameter."""
        return lambda rec, j: rec.params[j - 1] - factors(rec, j) * self.lr * self.gradient(rec.params[j - 1],
                                                                                           rec.rows[j])  # fmt: skip

    def accumulating(self, since: int) -> Predict:
        """Gradients summed since update `since` and never zeroed (a missing zero_grad())."""
        return lambda rec, j: rec.params[j - 1] - self.lr * self.history(rec)[since : j + 1].sum(axis=0)

    def accumulated_since(self, rec: Steps, k: int, tol: CompareParams) -> int | None:
        """The earliest step s < k from which summed gradients give update k, at once for every s."""
        if k < 2:
            return None
        summed = np.cumsum(self.history(rec)[: k + 1], axis=0)
        before = rec.params[k - 1]
        candidates = before - self.lr * (summed[k] - summed[: k - 1])  # row s - 1: since s
        with np.errstate(all="ignore"):
            matches = np.flatnonzero(close_update(before, candidates, rec.params[k], tol).all(axis=1))
        return int(matches[0]) + 1 if matches.size else None

    def weight_decay(self, lam: float, weights_only: bool = False) -> Predict:
        """torch.optim.SGD's weight_decay: lam * params added to every gradient, the bias's included (or, as
        an L2 penalty on the weights written into the loss, the weights' alone)."""

        def predict(rec: Steps, j: int) -> np.ndarray:
            before = rec.params[j - 1]
            decayed = np.append(before[:-1], 0.0) if weights_only else before
            return before - self.lr * (self.gradient(before, rec.rows[j]) + lam * decayed)

        return predict


def frozen(rec: Steps, j: int) -> np.ndarray:
    """No update at all: every update computed and thrown away."""
    return rec.params[j - 1]


def skipped_at(k: int, then: Predict) -> Predict:
    """No update at step k only (a skipped minibatch), `then` at every other."""
    return lambda rec, j: rec.params[j - 1] if j == k else then(rec, j)


# After its fit, a mechanism must also predict this many updates, or to the end of the epoch when that is
# further: one update fits many mechanisms, a run of them only the true one.
FOLLOWING = 3


def window(rec: Steps, k: int, last_fit: int | None = None, epochs: int = 1) -> range:
    """The diverging step k and the updates after it a mechanism must also predict: FOLLOWING past its last
    fitted update, and to the end of k's epoch (epochs=2: of the next one, for what changes between epochs)."""
    last = k if last_fit is None else last_fit
    later = np.flatnonzero(rec.epoch[k:] < rec.epoch[k] + epochs)
    return range(k, min(len(rec.params) - 1, max(last + FOLLOWING, k + int(later[-1]))) + 1)


def reproduces(predict: Predict, rec: Steps, j: int, tol: CompareParams) -> bool:
    """Whether `predict` gives the record's parameters after update j from its own before it, within `tol`
    (tolerance.close_update: the rule every update held to a replay is judged by)."""
    with np.errstate(all="ignore"):
        return bool(close_update(rec.params[j - 1], predict(rec, j), rec.params[j], tol).all())


def predicts(predict: Predict, rec: Steps, steps: range, tol: CompareParams) -> bool:
    """Whether `predict` reproduces every update of `steps`."""
    return all(reproduces(predict, rec, j, tol) for j in steps)


def gap(predict: Predict, rec: Steps, steps: range, tol: CompareParams) -> float:
    """The largest difference of `predict` from the record over `steps`, in units of the tolerance."""
    with np.errstate(all="ignore"):
        ratios = (update_ratio(rec.params[j - 1], predict(rec, j), rec.params[j], tol).max() for j in steps)
        return float(max(ratios, default=0.0))


def factor(lecture: Lecture, rec: Steps, k: int) -> float | None:
    """The one factor c that makes the update at k the lecture's times c, by least squares; None when the
    lecture's update is zero or not finite."""
    plain = lecture.sgd()(rec, k) - rec.params[k - 1]
    seen = rec.params[k] - rec.params[k - 1]
    with np.errstate(all="ignore"):
        den = float(plain @ plain)
        c = float(seen @ plain) / den if den else float("nan")
    return c if np.isfinite(c) else None

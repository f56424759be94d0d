"""The lecture's update replayed from a step record, in float64: plain minibatch SGD on ADALINE's MSE (the
manual backend's formula, dL/dw = -2/n x^T (y - yhat)) and the mechanism of each bug the divergence rules
name. A rule names a cause only when its mechanism, started from the suspect's own parameters before each
update, reproduces the suspect's parameters after it, within the compare tolerances, at the diverging step
and at the following ones (docs/divergence.md, "A cause must predict").
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adaline_repro.core.results import Steps

# After the diverging step, a mechanism must also predict this many updates, or to the end of the epoch
# when that is further: one update fits many mechanisms, a run of them only the true one.
FOLLOWING = 3

Predict = Callable[[Steps, int], np.ndarray]  # the parameters after update j, from the record's before j


@dataclass(frozen=True)
class Lecture:
    """The training table (train.csv) and the learning rate: all plain SGD needs to replay an update."""

    train: Path
    lr: float

    @functools.cached_property
    def _data(self) -> tuple[dict[int, int], np.ndarray, np.ndarray]:
        from adaline_repro.core.results import read_table  # read only once a step diverges

        table = read_table(self.train)
        index = {int(r): i for i, r in enumerate(table.rows.tolist())}
        return index, table.x.astype(np.float64), table.y.astype(np.float64)

    def covers(self, rec: Steps) -> bool:
        """Whether every minibatch of the record is rows of this table, with its parameters' count."""
        index, x, _ = self._data
        return len(rec.names) == x.shape[1] + 1 and all(r in index for rows in rec.rows for r in rows)

    def gradient(self, params: np.ndarray, rows: tuple[int, ...]) -> np.ndarray:
        """The MSE gradient over the minibatch at `params` (weights..., bias)."""
        index, x, y = self._data
        at = [index[r] for r in rows]
        xb, yb = x[at], y[at]
        residual = yb - (xb @ params[:-1] + params[-1])
        n = len(at)
        return np.append(-2.0 / n * (xb.T @ residual), -2.0 / n * residual.sum())

    # --- mechanisms: each gives the parameters after update j from the record's own before it ---------

    def sgd(self, factor: float = 1.0, per_row: bool = False) -> Predict:
        """Plain SGD with the learning rate times `factor` (per_row: times the minibatch's size, a loss that
        sums over the minibatch)."""

        def predict(rec: Steps, j: int) -> np.ndarray:
            scale = factor * (len(rec.rows[j]) if per_row else 1)
            return rec.params[j - 1] - scale * self.lr * self.gradient(rec.params[j - 1], rec.rows[j])

        return predict

    def summed_gradients(self, rec: Steps, upto: int) -> np.ndarray:
        """(upto + 1, parameters): row j the sum of the fresh gradients of updates 1..j, each at the record's
        parameters before it (what gradients never zeroed add up to); computed once, O(upto)."""
        fresh = np.zeros((upto + 1, len(rec.names)))
        for i in range(1, upto + 1):
            fresh[i] = self.gradient(rec.params[i - 1], rec.rows[i])
        return np.cumsum(fresh, axis=0)

    def per_parameter(self, factors: np.ndarray) -> Predict:
        """Plain SGD with each parameter's update times its own factor (a bug in one gradient component)."""

        def predict(rec: Steps, j: int) -> np.ndarray:
            return rec.params[j - 1] - factors * self.lr * self.gradient(rec.params[j - 1], rec.rows[j])

        return predict

    def accumulating(self, since: int, summed: np.ndarray) -> Predict:
        """Gradients summed since update `since` and never zeroed (a missing zero_grad()); `summed` from
        summed_gradients."""
        return lambda rec, j: rec.params[j - 1] - self.lr * (summed[j] - summed[since - 1])

    def accumulated_since(self, rec: Steps, k: int, summed: np.ndarray, close: Callable) -> int | None:
        """The earliest step s < k from which summed gradients give update k (`close`: elementwise), at once
        for every s."""
        if k < 2:
            return None
        candidates = rec.params[k - 1] - self.lr * (summed[k] - summed[: k - 1])  # row s - 1: since s
        with np.errstate(all="ignore"):
            matches = np.flatnonzero(close(candidates, rec.params[k]).all(axis=1))
        return int(matches[0]) + 1 if matches.size else None

    def momentum(self, mu: float) -> Predict:
        """torch.optim.SGD's momentum from the first update on: a velocity v = mu * v + g (v = g at first)."""

        def predict(rec: Steps, j: int) -> np.ndarray:
            velocity = np.zeros(len(rec.names))
            for i in range(1, j + 1):
                g = self.gradient(rec.params[i - 1], rec.rows[i])
                velocity = g if i == 1 else mu * velocity + g
            return rec.params[j - 1] - self.lr * velocity

        return predict

    def weight_decay(self, lam: float) -> Predict:
        """torch.optim.SGD's weight_decay: lam * params added to every gradient, the bias's included."""

        def predict(rec: Steps, j: int) -> np.ndarray:
            before = rec.params[j - 1]
            return before - self.lr * (self.gradient(before, rec.rows[j]) + lam * before)

        return predict

    def fitted(self, rec: Steps, k: int, basis: np.ndarray) -> float | None:
        """The c for which update k is the lecture's minus lr * c * basis, by least squares (how far the
        suspect's gradient is the lecture's plus c times something); None when it cannot be told."""
        extra = -(rec.params[k] - rec.params[k - 1]) / self.lr - self.gradient(rec.params[k - 1], rec.rows[k])
        with np.errstate(all="ignore"):
            den = float(basis @ basis)
            c = float(extra @ basis) / den if den else float("nan")
        return c if np.isfinite(c) else None


def frozen(rec: Steps, j: int) -> np.ndarray:
    """No update at all: every update computed and thrown away."""
    return rec.params[j - 1]


def skipped_at(k: int, then: Predict) -> Predict:
    """No update at step k only (a skipped minibatch), `then` at every other."""
    return lambda rec, j: rec.params[j - 1] if j == k else then(rec, j)


def window(rec: Steps, k: int) -> range:
    """The diverging step k and the updates after it a mechanism must also predict."""
    end_of_epoch = k + int(np.count_nonzero(rec.epoch[k + 1 :] == rec.epoch[k]))
    return range(k, min(len(rec.params) - 1, max(k + FOLLOWING, end_of_epoch)) + 1)


def predicts(predict: Predict, rec: Steps, steps: range, close: Callable[[np.ndarray, np.ndarray], bool]) -> bool:
    with np.errstate(all="ignore"):
        return all(close(predict(rec, j), rec.params[j]) for j in steps)


def factor(lecture: Lecture, rec: Steps, k: int) -> float | None:
    """The one factor c that makes the update at k the lecture's times c, by least squares; None when the
    lecture's update is zero or not finite."""
    plain = lecture.sgd()(rec, k) - rec.params[k - 1]
    seen = rec.params[k] - rec.params[k - 1]
    with np.errstate(all="ignore"):
        den = float(plain @ plain)
        c = float(seen @ plain) / den if den else float("nan")
    return c if np.isfinite(c) else None

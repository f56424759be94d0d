"""The mechanisms with nothing to fit, or one factor read off the diverging update: an update not applied
(never again, or at that step alone), a loss summed over the minibatch, the update times a factor (its sign
flipped, the learning rate off, or one per parameter: a feature left out), and gradients never zeroed."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from adaline_repro.comparison import replay
from adaline_repro.comparison.mechanisms import Mechanism
from adaline_repro.core.params import CompareParams
from adaline_repro.core.results import Steps

FACTOR_RTOL = 1e-3  # a fitted factor this close to a round one (-1, 0.5, the minibatch size) is named so


def not_applied(lecture: replay.Lecture, rec: Steps, k: int, name: str) -> Iterator[Mechanism]:
    steps = replay.window(rec, k)
    yield Mechanism("no_update", replay.frozen, f"{name} never applies an update from {rec.label(k)} on (its "
                    "parameters stay put)", steps, k)  # fmt: skip
    yield Mechanism("no_update", replay.skipped_at(k, lecture.sgd()), f"{name} skips the update of {rec.label(k)} "
                    "alone", steps, k, single=True)  # fmt: skip


def summed(lecture: replay.Lecture, rec: Steps, k: int, name: str) -> Iterator[Mechanism]:
    steps = replay.window(rec, k)
    sizes = {len(rec.rows[j]) for j in steps}
    n = next(iter(sizes))
    alias = f" (or a learning rate exactly {n} x too large: the minibatches here all have {n} rows)"
    yield Mechanism("sum_not_mean", lecture.sgd(per_row=True), f"{name}'s loss sums over the minibatch instead "
                    f"of averaging{alias if len(sizes) == 1 else ''}", steps, k)  # fmt: skip


def factors(lecture: replay.Lecture, rec: Steps, k: int, name: str) -> Iterator[Mechanism]:
    """One factor for every parameter (sign, learning rate), else one per parameter (a feature left out:
    0 x), each through the next epoch (a factor that changes between epochs is a schedule's, and a positive
    one from a later step too: schedules.py)."""
    steps = replay.window(rec, k, epochs=2)
    plain = lecture.sgd()(rec, k) - rec.params[k - 1]
    with np.errstate(all="ignore"):
        each = np.where(plain != 0, (rec.params[k] - rec.params[k - 1]) / plain, np.nan)
    if np.isfinite(each).all() and not np.allclose(each, each[0], rtol=FACTOR_RTOL, atol=0):
        off = [f"{n} {f:.3g} x" for n, f in zip(rec.names, each.tolist(), strict=True) if abs(f - 1) > FACTOR_RTOL]
        yield Mechanism("parameter_factor", lecture.scaled(lambda rec, j: each), (
            f"{name}'s update of {', '.join(off)} the lecture's, the other parameters' right (a bug in one "
            "component of the gradient or of the update; 0 x: a feature left out of the update, or a parameter "
            "never updated)"), steps, k)  # fmt: skip
        return
    c = replay.factor(lecture, rec, k)
    if c is None or c == 0 or (c > 0 and k > 1):
        return
    if c < 0:
        what = (
            "`+=` for `-=`, or the residual's sign flipped" if abs(c + 1) <= FACTOR_RTOL else f"and {-c:.6g} x as far"
        )
        yield Mechanism("sign", lecture.sgd(c), f"{name}'s updates go up the gradient ({c:.6g} x the lecture's: "
                        f"{what})", steps, k)  # fmt: skip
    else:
        alias = (" (or its gradient lost the 2 of d/dw (y - yhat)^2, or a Huber loss whose delta clips none of "
                 "these residuals)" if abs(c - 0.5) <= FACTOR_RTOL * 0.5 else "")  # fmt: skip
        yield Mechanism("learning_rate", lecture.sgd(c), f"{name}'s learning rate is {c:.6g} x the configured "
                        f"one{alias}", steps, k)  # fmt: skip


def never_zeroed(lecture: replay.Lecture, rec: Steps, k: int, name: str, tol: CompareParams) -> Iterator[Mechanism]:
    """Each update the learning rate times the sum of the fresh gradients since some step s, found at once."""
    since = lecture.accumulated_since(rec, k, tol)
    if since is not None:
        yield Mechanism("missing_zero_grad", lecture.accumulating(since), (
            f"{name}'s gradients were not zeroed since step {since}: each update is the sum of the fresh "
            f"gradients of steps {since} on"), replay.window(rec, k), k)  # fmt: skip

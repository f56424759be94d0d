"""Which mechanism reproduces a record's updates from its diverging step: the families the cause rules
know, tried in order (exact and cheap ones first, then the fitted ones: optimizers.py, schedules.py,
objectives.py), the first whose mechanism reproduces its whole span named (causes.py says it in words).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from adaline_repro.comparison import objectives, optimizers, replay, schedules
from adaline_repro.comparison.mechanisms import Mechanism
from adaline_repro.comparison.tolerance import close
from adaline_repro.core.params import CompareParams
from adaline_repro.core.results import Steps

FACTOR_RTOL = 1e-3  # a fitted factor this close to a round one (-1, 0.5, the minibatch size) is named so


def mechanism(lecture: replay.Lecture, rec: Steps, k: int, name: str, tol: CompareParams) -> Mechanism | None:
    """The first mechanism of the rules that reproduces the record's updates over its span (the diverging one
    and at least FOLLOWING more), where plain SGD misses at least two of them (one, for the rule that is about
    one update: a skipped one); None: no rule's."""
    plain, ok = lecture.sgd(), replay.within(tol)

    def needed(m: Mechanism) -> bool:  # a record that ends sooner leaves nothing to predict: no rule names it
        enough = len(m.steps) > replay.FOLLOWING
        return enough and (m.single or sum(not ok(plain(rec, j), rec.params[j]) for j in m.steps) >= 2)

    with np.errstate(all="ignore"):  # arbitrary records overflow the fits: they then reproduce nothing
        return next((m for m in _mechanisms(lecture, rec, k, name, tol) if m.holds(rec, tol) and needed(m)), None)


def _mechanisms(lecture: replay.Lecture, rec: Steps, k: int, name: str, tol: CompareParams) -> Iterator[Mechanism]:
    """Each bug the rules know, as a mechanism with its parameters fitted, exact and cheap ones first."""
    steps = replay.window(rec, k)
    yield Mechanism("no_update", replay.frozen, f"{name} never applies an update from {rec.label(k)} on (its "
                    "parameters stay put)", steps)  # fmt: skip
    yield Mechanism("no_update", replay.skipped_at(k, lecture.sgd()), f"{name} skips the update of {rec.label(k)} "
                    "alone", steps, single=True)  # fmt: skip
    sizes = {len(rec.rows[j]) for j in steps}
    n = next(iter(sizes))
    alias = f" (or a learning rate exactly {n} x too large: the minibatches here all have {n} rows)"
    yield Mechanism("sum_not_mean", lecture.sgd(per_row=True), f"{name}'s loss sums over the minibatch instead "
                    f"of averaging{alias if len(sizes) == 1 else ''}", steps)  # fmt: skip
    yield from _factors(lecture, rec, k, name, replay.window(rec, k, epochs=2))
    yield from objectives.nominal_batch(lecture, rec, k, name, tol)
    g = lecture.gradients(rec)
    summed = np.cumsum(g, axis=0)
    since = lecture.accumulated_since(rec, k, summed, lambda a, b: close(a, b, tol))
    if since is not None:
        yield Mechanism("missing_zero_grad", lecture.accumulating(since, summed), (
            f"{name}'s gradients were not zeroed since step {since}: each update is the sum of the fresh "
            f"gradients of steps {since} on"), steps)  # fmt: skip
    yield from schedules.families(lecture, rec, k, name, tol)
    yield from optimizers.families(lecture, rec, k, name, g, tol)
    yield from objectives.targets(lecture, rec, k, name, tol)
    yield from objectives.losses(lecture, rec, k, name, tol)
    yield from objectives.rows_left_out(lecture, rec, k, name, tol)


def _factors(lecture: replay.Lecture, rec: Steps, k: int, name: str, steps: range) -> Iterator[Mechanism]:
    """The factor mechanisms: one factor for every parameter (sign, learning rate), else one per parameter
    (a feature left out: 0 x), each through the next epoch (a factor that changes between epochs is a
    schedule's, and a positive one from a later step too: schedules.py)."""
    plain = lecture.sgd()(rec, k) - rec.params[k - 1]
    with np.errstate(all="ignore"):
        each = np.where(plain != 0, (rec.params[k] - rec.params[k - 1]) / plain, np.nan)
    if np.isfinite(each).all() and not np.allclose(each, each[0], rtol=FACTOR_RTOL, atol=0):
        off = [f"{n} {f:.3g} x" for n, f in zip(rec.names, each.tolist(), strict=True) if abs(f - 1) > FACTOR_RTOL]
        yield Mechanism("parameter_factor", lecture.scaled(lambda rec, j: each), (
            f"{name}'s update of {', '.join(off)} the lecture's, the other parameters' right (a bug in one "
            "component of the gradient or of the update; 0 x: a feature left out of the update, or a parameter "
            "never updated)"), steps)  # fmt: skip
        return
    c = replay.factor(lecture, rec, k)
    if c is None or c == 0 or (c > 0 and k > 1):
        return
    if c < 0:
        what = (
            "`+=` for `-=`, or the residual's sign flipped" if abs(c + 1) <= FACTOR_RTOL else f"and {-c:.6g} x as far"
        )
        yield Mechanism("sign", lecture.sgd(c), f"{name}'s updates go up the gradient ({c:.6g} x the lecture's: "
                        f"{what})", steps)  # fmt: skip
    else:
        alias = (" (or its gradient lost the 2 of d/dw (y - yhat)^2, or a Huber loss whose delta clips none of "
                 "these residuals)" if abs(c - 0.5) <= FACTOR_RTOL * 0.5 else "")  # fmt: skip
        yield Mechanism("learning_rate", lecture.sgd(c), f"{name}'s learning rate is {c:.6g} x the configured "
                        f"one{alias}", steps)  # fmt: skip

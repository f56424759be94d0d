"""The likely-cause rules of the divergence locator: at the first step two records part, what the evidence
proves about why (docs/divergence.md has one paragraph per rule).

Rules that read the records alone come first: parameters that are not finite, a different start, other
minibatch rows, an update not applied, and a drift (the reference's update, applied to the suspect's
parameters, gives the suspect's). The mechanisms (a learning-rate factor, a wrong sign, a summed loss,
gradients never zeroed, an update skipped or never applied) are named only when the lecture's update
replayed under that mechanism (replay.py) reproduces the suspect at the diverging step and at the
following updates, and plain SGD does not: a mechanism must predict, not just fit one update. Anything
else is "unexplained", with the numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from adaline_repro.comparison import replay
from adaline_repro.comparison.tolerance import close
from adaline_repro.core.params import CompareParams
from adaline_repro.core.results import Steps

# rule -> what the report calls it
RULES = {
    "non_finite": "parameters that are not finite",
    "initialisation": "different initialisation",
    "shuffle_order": "different minibatch or shuffle order",
    "no_update": "an update that was not applied",
    "drift": "a gradual drift (this step's update is right)",
    "missing_zero_grad": "missing zero_grad() (gradient accumulation)",
    "sum_not_mean": "sum instead of mean in the loss",
    "sign": "update in the wrong direction",
    "learning_rate": "learning rate off by a factor",
    "parameter_factor": "some parameters' updates off by a factor",
    "momentum": "momentum the lecture does not use",
    "weight_decay": "weight decay the lecture does not use",
    "length": "a different number of updates",
    "parameters": "different parameters",
    "unexplained": "unexplained",
}
_FACTOR_RTOL = 1e-3  # a fitted factor this close to a round one (-1, 0.5, the minibatch size) is named so


@dataclass(frozen=True)
class Cause:
    rule: str  # a key of RULES
    pair: tuple[str, str]  # (reference, other): the records compared
    backend: str | None  # the one of the pair the evidence points at; None when it cannot say which
    evidence: str  # one sentence, with the numbers

    @property
    def title(self) -> str:
        return RULES[self.rule]

    def text(self) -> str:
        """`module: missing zero_grad() (gradient accumulation)`."""
        return f"{self.backend or ' or '.join(self.pair)}: {self.title}"

    def to_json(self) -> dict:
        return {
            "backend": self.backend,
            "evidence": self.evidence,
            "pair": list(self.pair),
            "rule": self.rule,
            "title": self.title,
        }

    @classmethod
    def from_json(cls, data: dict) -> Cause:
        return cls(data["rule"], tuple(data["pair"]), data["backend"], data["evidence"])


def explain(
    records: Mapping[str, Steps],
    ref: str,
    other: str,
    k: int,
    tol: CompareParams,
    blame_known: bool,
    lecture: replay.Lecture | None,
) -> Cause:
    """Why `other` parts from `ref` at step k; blame_known: `ref` speaks for a majority, so `other` is the
    suspect unless the evidence says otherwise."""
    r, o = records[ref], records[other]
    pair = (ref, other)
    suspect = other if blame_known else None
    broken = [n for n, rec in ((ref, r), (other, o)) if not np.isfinite(rec.params[k]).all()]
    if broken:
        return Cause(
            "non_finite",
            pair,
            broken[0] if len(broken) == 1 else suspect,
            f"at {r.label(k)} {' and '.join(broken)} holds {vec(records[broken[0]].params[k])}: training "
            "overflowed (a learning rate too large for the data) or divided by zero",
        )
    if k == 0:
        return Cause(
            "initialisation", pair, suspect, f"{other} starts from {vec(o.params[0])}, {ref} from {vec(r.params[0])}"
        )
    if set(r.rows[k]) != set(o.rows[k]):
        return Cause(
            "shuffle_order",
            pair,
            suspect,
            f"{r.label(k)} takes rows {_rows(o.rows[k])} in {other} and rows {_rows(r.rows[k])} in {ref}",
        )
    if lecture is not None and lecture.covers(r) and lecture.covers(o):
        return _replayed(records, pair, k, tol, blame_known, lecture)
    return _observed(records, pair, k, tol, blame_known)


def _observed(
    records: Mapping[str, Steps], pair: tuple[str, str], k: int, tol: CompareParams, blame_known: bool
) -> Cause:
    """Without the training data: only what the two records show at step k."""
    ref, other = pair
    r, o = records[ref], records[other]
    directions = [(ref, other)] if blame_known else [(ref, other), (other, ref)]
    for good, bad in directions:
        if _still(records[bad], k, tol) and not _still(records[good], k, tol):
            return Cause(
                "no_update",
                pair,
                bad,
                f"{bad}'s parameters did not change at {r.label(k)} while {good}'s moved by "
                f"{vec(_update(records[good], k))}: the update was computed but not applied, or the minibatch skipped",
            )
    if close(o.params[k - 1] + _update(r, k), o.params[k], tol).all():
        return _drift(pair, r, o, k, other if blame_known else None)
    return _unexplained(pair, r, o, k, other if blame_known else None, "")


def _replayed(
    records: Mapping[str, Steps],
    pair: tuple[str, str],
    k: int,
    tol: CompareParams,
    blame_known: bool,
    lecture: replay.Lecture,
) -> Cause:
    """With the training data: plain SGD replayed from each record's own parameters says which of the pair
    is wrong, and a mechanism is named only when it predicts that record's updates from k on."""
    ref, other = pair
    r, o = records[ref], records[other]

    def fits(predict: replay.Predict, rec: Steps) -> bool:
        return replay.predicts(predict, rec, replay.window(rec, k), lambda a, b: bool(close(a, b, tol).all()))

    plain = lecture.sgd()
    wrong = [name for name in pair if not fits(plain, records[name])]
    if not wrong:
        return _drift(pair, r, o, k, other if blame_known else None)
    if len(wrong) == 2:
        why = "; the lecture's update, replayed from each one's own parameters, reproduces neither"
        return _unexplained(pair, r, o, k, other if blame_known else None, why)
    (bad,) = wrong
    rec = records[bad]
    steps = replay.window(rec, k)
    span = f"steps {steps[0]}-{steps[-1]}" if len(steps) > 1 else f"step {k}"
    for rule, predict, evidence in _mechanisms(lecture, rec, k, bad, tol):
        if fits(predict, rec):
            proof = f"; this reproduces {bad}'s updates at {span}, and the lecture's plain update does not"
            return Cause(rule, pair, bad, evidence + proof)
    good = ref if bad == other else other
    why = f"; the lecture's update reproduces {good}, not {bad}, and no rule's mechanism reproduces {bad} at {span}"
    return _unexplained(pair, r, o, k, bad, why)


def _mechanisms(lecture: replay.Lecture, rec: Steps, k: int, name: str, tol: CompareParams):  # noqa: ANN202
    """(rule, mechanism, evidence) for each bug the rules know, most specific first (a generator)."""
    yield "no_update", replay.frozen, f"{name} never applies an update from {rec.label(k)} on (its parameters stay put)"
    yield "no_update", replay.skipped_at(k, lecture.sgd()), f"{name} skips the update of {rec.label(k)} alone"
    sizes = {len(rec.rows[j]) for j in replay.window(rec, k)}
    n = next(iter(sizes))
    alias = (
        f" (or a learning rate exactly {n} x too large: the minibatches here all have {n} rows)"
        if len(sizes) == 1
        else ""
    )
    yield (
        "sum_not_mean",
        lecture.sgd(per_row=True),
        f"{name}'s loss sums over the minibatch instead of averaging{alias}",
    )
    summed = lecture.summed_gradients(rec, replay.window(rec, k)[-1])
    since = lecture.accumulated_since(rec, k, summed, lambda a, b: close(a, b, tol))
    if since is not None:
        yield (
            "missing_zero_grad",
            lecture.accumulating(since, summed),
            f"{name}'s gradients were not zeroed since step {since}: each update is the sum of the fresh gradients of "
            f"steps {since} on",
        )
    if k == 2:  # momentum from the first update shows at the second: v = mu * g1 + g2
        mu = lecture.fitted(rec, k, lecture.gradient(rec.params[0], rec.rows[1]))
        if mu is not None and mu > 0:
            yield (
                "momentum",
                lecture.momentum(mu),
                f"{name} updates with momentum {mu:.3g} (torch.optim.SGD's momentum=)",
            )
    lam = lecture.fitted(rec, k, rec.params[k - 1])
    if lam is not None and lam > 0:
        yield (
            "weight_decay",
            lecture.weight_decay(lam),
            f"{name} adds weight decay {lam:.3g} x its parameters to the gradient",
        )
    yield from _factors(lecture, rec, k, name)


def _factors(lecture: replay.Lecture, rec: Steps, k: int, name: str):  # noqa: ANN202 (a generator)
    """The factor mechanisms: one factor for every parameter (sign, learning rate), else one per parameter."""
    plain = lecture.sgd()(rec, k) - rec.params[k - 1]
    with np.errstate(all="ignore"):
        each = np.where(plain != 0, _update(rec, k) / plain, np.nan)
    if np.isfinite(each).all() and not np.allclose(each, each[0], rtol=_FACTOR_RTOL, atol=0):
        off = [f"{n} {f:.3g} x" for n, f in zip(rec.names, each.tolist(), strict=True) if abs(f - 1) > _FACTOR_RTOL]
        yield "parameter_factor", lecture.per_parameter(each), (
            f"{name}'s update of {', '.join(off)} the lecture's, the other parameters' right (a bug in one "
            "component of the gradient or of the update: 0 x is a parameter never updated)")  # fmt: skip
        return
    c = replay.factor(lecture, rec, k)
    if c is None or c == 0:
        return
    if c < 0:
        what = (
            "`+=` for `-=`, or the residual's sign flipped" if abs(c + 1) <= _FACTOR_RTOL else f"and {-c:.6g} x as far"
        )
        yield "sign", lecture.sgd(c), f"{name}'s updates go up the gradient ({c:.6g} x the lecture's: {what})"
    else:
        alias = " (or its gradient lost the 2 of d/dw (y - yhat)^2)" if abs(c - 0.5) <= _FACTOR_RTOL * 0.5 else ""
        yield "learning_rate", lecture.sgd(c), f"{name}'s learning rate is {c:.6g} x the configured one{alias}"


def _drift(pair: tuple[str, str], r: Steps, o: Steps, k: int, blamed: str | None) -> Cause:
    gap = np.abs(o.params[k - 1] - r.params[k - 1])
    return Cause(
        "drift",
        pair,
        blamed,
        f"the update at {r.label(k)} is right in both (the same within the tolerances); the parameters were "
        f"already {vec(gap)} apart before it, a difference built up over earlier updates (no rule names one step)",
    )


def _unexplained(pair: tuple[str, str], r: Steps, o: Steps, k: int, blamed: str | None, why: str) -> Cause:
    ref, other = pair
    moved = [n for n, u in zip(o.names, _update(o, k).tolist(), strict=True) if u != 0]
    return Cause(
        "unexplained",
        pair,
        blamed,
        f"at {r.label(k)} {other} updates by {vec(_update(o, k))}, {ref} by {vec(_update(r, k))} (ratios "
        f"{vec(ratios(r, o, k))}; {other} moved {', '.join(moved) or 'nothing'}), from parameters "
        f"{vec(o.params[k - 1])} and {vec(r.params[k - 1])}{why}; no rule reproduces this",
    )


def _update(rec: Steps, k: int) -> np.ndarray:
    with np.errstate(invalid="ignore", over="ignore"):
        return rec.params[k] - rec.params[k - 1]


def _still(rec: Steps, k: int, tol: CompareParams) -> bool:
    """Whether the record's parameters are unchanged by update k, within `tol`."""
    return bool(close(rec.params[k - 1], rec.params[k], tol).all())


def ratios(a: Steps, b: Steps, k: int) -> list[float | None]:
    """b's update at step k over a's, per parameter; None where a's is zero or either is not finite."""
    pairs = zip(_update(a, k).tolist(), _update(b, k).tolist(), strict=True)
    return [float(y / x) if x != 0 and math.isfinite(x) and math.isfinite(y) else None for x, y in pairs]


def num(v: float | str | None, digits: int = 6) -> str:
    return "-" if v is None else v if isinstance(v, str) else f"{v:.{digits}g}"


def vec(values: np.ndarray | list[float | str | None]) -> str:
    return "[" + ", ".join(num(v) for v in list(values)) + "]"


def _rows(rows: tuple[int, ...]) -> str:
    return "{" + " ".join(map(str, sorted(rows))) + "}"

"""The likely-cause rules of the divergence locator: at the first step two records part, or records part
from the lecture's update, what the evidence proves about why (docs/divergence.md has one paragraph per rule).

Rules that read the records alone come first: parameters that are not finite, a different start, other
minibatch rows, an update not applied, and a drift (the reference's update, applied to the suspect's
parameters, gives the suspect's). The mechanisms (mechanisms.py: an update skipped or never applied, a
summed loss, a factor on the learning rate or on some parameters, a nominal minibatch size, gradients never
zeroed, optimizers.py, schedules.py, objectives.py) are named only when the lecture's update replayed under
that mechanism (replay.py), its parameters fitted on the first updates, reproduces the suspect at the
diverging step and at the following updates, and plain SGD does not: a mechanism must predict, not just
fit. Anything else is "unexplained", with the numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from adaline_repro.comparison import replay
from adaline_repro.comparison.mechanisms import Mechanism
from adaline_repro.comparison.search import mechanism
from adaline_repro.comparison.tolerance import close
from adaline_repro.core.params import CompareParams
from adaline_repro.core.results import Steps

LECTURE = "lecture"  # the lecture's update, replayed: the reference every backend is also held to

# rule -> what the report calls it
RULES = {
    "non_finite": "parameters that are not finite",
    "initialisation": "different initialisation",
    "shuffle_order": "different minibatch or shuffle order",
    "no_update": "an update that was not applied",
    "drift": "a gradual drift (this step's update is right)",
    "missing_zero_grad": "missing zero_grad() (gradient accumulation)",
    "sum_not_mean": "sum instead of mean in the loss",
    "nominal_batch": "gradient divided by the nominal minibatch size",
    "sign": "update in the wrong direction",
    "learning_rate": "learning rate off by a factor",
    "lr_schedule": "a learning-rate schedule the lecture does not use",
    "parameter_factor": "some parameters' updates off by a factor",
    "momentum": "momentum the lecture does not use",
    "nesterov": "Nesterov momentum the lecture does not use",
    "weight_decay": "weight decay the lecture does not use",
    "adaptive_optimizer": "an adaptive optimizer instead of SGD",
    "targets": "targets transformed",
    "loss_function": "a loss other than the MSE",
    "rows_left_out": "minibatch rows left out of the update",
    "length": "a different number of updates",
    "parameters": "different parameters",
    "unexplained": "unexplained",
}


@dataclass(frozen=True)
class Cause:
    rule: str  # a key of RULES
    pair: tuple[str, str]  # (reference, other): the records compared; (LECTURE, a record) against the lecture
    backend: str | None  # the one of the pair the evidence points at; None when it cannot say which, or all share it
    evidence: str  # one sentence, with the numbers
    mechanism: Mechanism | None = field(default=None, compare=False, repr=False)  # what the evidence replayed
    shared: tuple[str, ...] = ()  # the records that all part from the lecture by this cause

    @property
    def title(self) -> str:
        return RULES[self.rule]

    def text(self) -> str:
        """`module: missing zero_grad() (gradient accumulation)`; `manual, autograd and module alike: ...`."""
        who = f"{_and(self.shared)} alike" if self.shared else self.backend or " or ".join(self.pair)
        return f"{who}: {self.title}"

    def to_json(self) -> dict:
        return {
            "backend": self.backend,
            "evidence": self.evidence,
            "pair": list(self.pair),
            "rule": self.rule,
            "shared": list(self.shared),
            "title": self.title,
        }

    @classmethod
    def from_json(cls, data: dict) -> Cause:
        return cls(data["rule"], tuple(data["pair"]), data["backend"], data["evidence"], None,
                   tuple(data.get("shared", ())))  # fmt: skip


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
        return _non_finite(records, broken, k, pair, broken[0] if len(broken) == 1 else suspect)
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
    plain = lecture.sgd()
    wrong = [name for name in pair if not replay.predicts(plain, records[name], replay.window(records[name], k), tol)]
    if not wrong:
        return _drift(pair, r, o, k, other if blame_known else None)
    if len(wrong) == 2:
        why = "; the lecture's update, replayed from each one's own parameters, reproduces neither"
        return _unexplained(pair, r, o, k, other if blame_known else None, why)
    (bad,) = wrong
    found = mechanism(lecture, records[bad], k, bad, tol)
    if found is not None:
        return Cause(found.rule, pair, bad, found.evidence + _proof(found, bad), found)
    good = ref if bad == other else other
    span = _span(replay.window(records[bad], k))
    why = f"; the lecture's update reproduces {good}, not {bad}, and no rule's mechanism reproduces {bad} at {span}"
    return _unexplained(pair, r, o, k, bad, why)


def explain_departure(
    records: Mapping[str, Steps], departed: list[str], k: int, tol: CompareParams, lecture: replay.Lecture
) -> list[Cause]:
    """Why the records `departed` part from the lecture's update at step k, where none of `records` (those
    that reach step k) part from each other yet: one cause for all the records its mechanism reproduces,
    when they include every one that departed (no backend blamed alone: rounding can carry one record over
    the tolerance an update before the others); else one per departed record; unexplained, for all of
    `records`, when no rule's mechanism reproduces any."""
    broken = [n for n in departed if not np.isfinite(records[n].params[k]).all()]
    if broken:
        shared = tuple(broken) if len(broken) > 1 else ()
        return [_non_finite(records, broken, k, (LECTURE, broken[0]), None if shared else broken[0], shared)]
    first = mechanism(lecture, records[departed[0]], k, "each backend" if len(records) > 1 else departed[0], tol)
    if first is not None:
        holders = tuple(n for n in records if first.holds(records[n], tol))
        if len(holders) > 1 and set(departed) <= set(holders):
            return [Cause(first.rule, (LECTURE, departed[0]), None, first.evidence + _proof(first, _and(holders)),
                          first, holders)]  # fmt: skip
    known = {departed[0]: None} if first is None else {}  # searched above, under another name
    alone = {n: known[n] if n in known else mechanism(lecture, records[n], k, n, tol) for n in departed}
    if not any(alone.values()):  # the others agree with it within the tolerances: none is blamed alone
        return [_departed(records, departed[0], k, lecture, tuple(records) if len(records) > 1 else ())]
    return [Cause(m.rule, (LECTURE, n), n, m.evidence + _proof(m, n), m) if m else _departed(records, n, k, lecture)
            for n, m in alone.items()]  # fmt: skip


def _non_finite(
    records: Mapping[str, Steps], broken: list[str], k: int, pair: tuple[str, str], blamed: str | None,
    shared: tuple[str, ...] = (),
) -> Cause:  # fmt: skip
    rec = records[broken[0]]
    evidence = (f"at {rec.label(k)} {' and '.join(broken)} holds {vec(rec.params[k])}: training overflowed (a "
                "learning rate too large for the data) or divided by zero")  # fmt: skip
    return Cause("non_finite", pair, blamed, evidence, None, shared)


def _departed(
    records: Mapping[str, Steps], name: str, k: int, lecture: replay.Lecture, shared: tuple[str, ...] = ()
) -> Cause:
    rec = records[name]
    plain = lecture.sgd()(rec, k) - rec.params[k - 1]
    others = [n for n in shared if n != name]
    verb = "agrees" if len(others) == 1 else "agree"
    alike = f" ({_and(others)} {verb} with it within the tolerances)" if others else ""
    evidence = (
        f"at {rec.label(k)} {name} updates by {vec(_update(rec, k))} from {vec(rec.params[k - 1])}, where the "
        f"lecture's update, replayed from there, is {vec(plain)}{alike}; no rule reproduces this"
    )
    return Cause("unexplained", (LECTURE, name), None if shared else name, evidence, None, shared)


def _proof(found: Mechanism, who: str) -> str:
    return f"; this reproduces {who}'s updates at {_span(found.steps)}, and the lecture's plain update does not"


def _span(steps: range) -> str:
    return f"steps {steps[0]}-{steps[-1]}" if len(steps) > 1 else f"step {steps[0]}"


def _and(names: list[str] | tuple[str, ...]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


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

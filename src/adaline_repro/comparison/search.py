"""Which mechanism reproduces a record's updates from its diverging step: the families the cause rules
know, tried in order (the exact and cheap ones of exact.py first, then the fitted ones of schedules.py,
optimizers.py and objectives.py), the first whose mechanism reproduces its whole span named (causes.py
says it in words).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from adaline_repro.comparison import exact, objectives, optimizers, replay, schedules
from adaline_repro.comparison.mechanisms import Mechanism
from adaline_repro.core.params import CompareParams
from adaline_repro.core.results import Steps

# Plain SGD must miss the record by more than this many tolerances at two updates of a mechanism's span. A
# mechanism that reproduces the record within one tolerance then parts from plain SGD by more than one there,
# so it is not plain SGD bent to fit a departure that rounding carried just over the tolerance.
CLEAR = 2.0


def mechanism(lecture: replay.Lecture, rec: Steps, k: int, name: str, tol: CompareParams) -> Mechanism | None:
    """The first mechanism of the rules that reproduces the record's updates over its span, at least
    FOLLOWING of them past its last fitted one (a record that ends sooner leaves nothing to predict), where
    plain SGD misses the record clearly (CLEAR) at two of them (one, for the rule about one update: a skipped
    one); None: no rule's, or a departure too weak to tell mechanisms apart."""
    plain = lecture.sgd()

    def needed(m: Mechanism) -> bool:
        if m.steps[-1] - m.fitted < replay.FOLLOWING:
            return False
        clear = sum(replay.gap(plain, rec, range(j, j + 1), tol) > CLEAR for j in m.steps)
        return clear >= (1 if m.single else 2)

    with np.errstate(all="ignore"):  # arbitrary records overflow the fits: they then reproduce nothing
        return next((m for m in _mechanisms(lecture, rec, k, name, tol) if needed(m) and m.holds(rec, tol)), None)


def _mechanisms(lecture: replay.Lecture, rec: Steps, k: int, name: str, tol: CompareParams) -> Iterator[Mechanism]:
    """Each bug the rules know, as a mechanism with its parameters fitted, exact and cheap ones first."""
    yield from exact.not_applied(lecture, rec, k, name)
    yield from exact.summed(lecture, rec, k, name)
    yield from exact.factors(lecture, rec, k, name)
    yield from objectives.nominal_batch(lecture, rec, k, name, tol)
    yield from exact.never_zeroed(lecture, rec, k, name, tol)
    yield from schedules.families(lecture, rec, k, name, tol)
    yield from optimizers.families(lecture, rec, k, name, tol)
    yield from objectives.targets(lecture, rec, k, name, tol)
    yield from objectives.losses(lecture, rec, k, name, tol)
    yield from objectives.rows_left_out(lecture, rec, k, name, tol)

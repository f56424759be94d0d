"""Where records part: the first update step at which two records' parameters differ beyond the compare
tolerances, what each record did at that step, and the likely cause (causes.py: the rules; replay.py: the
lecture's update replayed to test them). Compare runs this across backends; the check runs it across a
backend's committed and fresh records. The sentence and the report section are written from it in
report.py.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from adaline_repro.comparison.causes import LECTURE, Cause, explain, explain_departure, ratios
from adaline_repro.comparison.replay import Lecture
from adaline_repro.comparison.tolerance import close
from adaline_repro.core.params import CompareParams
from adaline_repro.core.results import Steps

Number = float | str | None  # as JSON holds it: a non-finite value as its text ("nan", "inf"); None: unknown
Pair = tuple[str, str]


@dataclass(frozen=True)
class AtStep:
    """What one record did at the diverging step: its minibatch and its parameters after the update, before
    it and the update itself (before and update: not at step 0). A record shorter than the step has only
    `updates`, the number it has."""

    rows: tuple[int, ...]
    after: tuple[Number, ...] | None = None
    before: tuple[Number, ...] | None = None
    update: tuple[Number, ...] | None = None
    updates: int | None = None

    def to_json(self) -> dict:
        if self.updates is not None:
            return {"rows": list(self.rows), "updates": self.updates}
        fields = {"after": self.after, "before": self.before, "update": self.update}
        return {"rows": list(self.rows), **{k: list(v) for k, v in fields.items() if v is not None}}

    @classmethod
    def from_json(cls, data: dict) -> AtStep:
        values = {k: tuple(data[k]) for k in ("after", "before", "update") if k in data}
        return cls(tuple(data["rows"]), **values, updates=data.get("updates"))


@dataclass(frozen=True)
class Divergence:
    """The first step at which any two records part, what every record did there, and the likely causes."""

    step: int
    epoch: int
    batch: int
    batches_per_epoch: int
    label: str  # `step 2 (epoch 1, batch 2)`
    parameters: tuple[str, ...]
    apart: tuple[Pair, ...]  # the pairs beyond tolerance at this step
    backends: Mapping[str, AtStep]  # in the records' order
    update_ratios: Mapping[Pair, tuple[Number, ...]]  # (a, b) -> b's update over a's, per parameter
    causes: tuple[Cause, ...]

    def to_json(self) -> dict:
        return {
            "step": self.step,
            "epoch": self.epoch,
            "batch": self.batch,
            "batches_per_epoch": self.batches_per_epoch,
            "label": self.label,
            "parameters": list(self.parameters),
            "apart": [f"{a}~{b}" for a, b in self.apart],
            "backends": {name: at.to_json() for name, at in self.backends.items()},
            "update_ratios": {f"{a}~{b}": list(r) for (a, b), r in self.update_ratios.items()},
            "likely_cause": [c.to_json() for c in self.causes],
        }

    @classmethod
    def from_json(cls, data: dict) -> Divergence:
        return cls(
            data["step"],
            data["epoch"],
            data["batch"],
            data["batches_per_epoch"],
            data["label"],
            tuple(data["parameters"]),
            tuple(_pair(p) for p in data["apart"]),
            {name: AtStep.from_json(at) for name, at in data["backends"].items()},
            {_pair(p): tuple(r) for p, r in data["update_ratios"].items()},
            tuple(Cause.from_json(c) for c in data["likely_cause"]),
        )


def first_divergence(
    records: Mapping[str, Steps], tol: CompareParams, lecture: Lecture | None = None
) -> Divergence | None:
    """The first step (0: the initial parameters) at which any pair's parameters differ beyond `tol`, over the
    steps all records have; past those, the first step a shorter record lacks. None when the records agree at
    every step and have the same length. Records of different parameters part at step 0. `lecture` (the
    training data and learning rate) lets the rules replay updates; without it they use the records alone."""
    pairs = list(itertools.combinations(records, 2))
    if not pairs:
        return None
    if len({r.names for r in records.values()}) != 1:
        cause = Cause("parameters", pairs[0], None, "; ".join(f"{n} has {', '.join(r.names) or 'none'}"
                                                             for n, r in records.items()))  # fmt: skip
        return _at(0, records, tuple(pairs), (cause,))
    length = min(len(r.params) for r in records.values())
    firsts = {}
    for a, b in pairs:
        apart = np.flatnonzero(~close(records[a].params[:length], records[b].params[:length], tol).all(axis=1))
        if apart.size:
            firsts[a, b] = int(apart[0])
    if firsts:
        k = min(firsts.values())
        return _at(k, records, tuple(p for p, s in firsts.items() if s == k), tuple(_causes(records, k, tol, lecture)))
    if len({len(r.params) for r in records.values()}) == 1:
        return None
    apart = tuple((a, b) for a, b in pairs if len(records[a].params) != len(records[b].params))
    counts = ", ".join(f"{n} {max(len(r.params) - 1, 0)}" for n, r in records.items())
    short = min(records, key=lambda n: len(records[n].params))
    evidence = (f"the records agree at every step they share (0-{length - 1}), then end apart: updates {counts} "
                "(other epochs, minibatches, or a loop that stops early)")  # fmt: skip
    return _at(length, records, apart, (Cause("length", apart[0], short, evidence),))


def first_departure(
    records: Mapping[str, Steps], tol: CompareParams, lecture: Lecture, before: int | None = None
) -> Divergence | None:
    """The first update at which any record is not the lecture's update, replayed in float64 from that record's
    own parameters before it on its own minibatch, within `tol`: what compare also holds every backend to, so
    that a bug they all share does not pass because they agree. At that step: what each record and the
    lecture did, and why they part (one cause for all when one mechanism reproduces each). None when every
    update of every record is the lecture's (before step `before`, when given), or the table does not hold the
    records' minibatches."""
    if not all(lecture.covers(rec) for rec in records.values()):
        return None
    steps = {name: lecture.departure(rec, tol) for name, rec in records.items()}
    parted = {name: k for name, k in steps.items() if k is not None}
    if not parted:
        return None
    k = min(parted.values())
    if before is not None and k >= before:
        return None
    names = [name for name, at in parted.items() if at == k]
    reaching = {name: rec for name, rec in records.items() if k <= rec.updates}
    first = records[names[0]]
    replayed = first.params[: k + 1].copy()
    replayed[k] = lecture.sgd()(first, k)
    reference = Steps(first.names, first.epoch[: k + 1], first.batch[: k + 1], first.rows[: k + 1], replayed,
                      first.batch_mse[: k + 1])  # fmt: skip
    causes = explain_departure(reaching, names, k, tol, lecture)
    return _at(k, {LECTURE: reference, **records}, tuple((LECTURE, name) for name in names), tuple(causes))


def _at(k: int, records: Mapping[str, Steps], apart: tuple[Pair, ...], causes: tuple[Cause, ...]) -> Divergence:
    """The Divergence at step k: what each record did there (a shorter record: how many updates it has)."""
    has = {name: rec for name, rec in records.items() if k < len(rec.params)}
    first = next(iter(has.values()), next(iter(records.values())))
    backends = {}
    for name, rec in records.items():
        if name not in has:
            backends[name] = AtStep((), updates=max(rec.updates, 0))
            continue
        with np.errstate(invalid="ignore"):
            update = _json(rec.params[k] - rec.params[k - 1]) if k else None
        backends[name] = AtStep(rec.rows[k], _json(rec.params[k]), _json(rec.params[k - 1]) if k else None, update)
    return Divergence(
        step=k,
        epoch=int(first.epoch[k]) if has else 0,
        batch=int(first.batch[k]) if has else 0,
        batches_per_epoch=first.batches_per_epoch,
        label=first.label(k) if has else f"step {k}",
        parameters=first.names,
        apart=apart,
        backends=backends,
        update_ratios={
            (a, b): _json(ratios(has[a], has[b], k))
            for a, b in itertools.combinations(has, 2)
            if k and has[a].names == has[b].names
        },
        causes=causes,
    )


def _causes(records: Mapping[str, Steps], k: int, tol: CompareParams, lecture: Lecture | None) -> list[Cause]:
    """One cause for each record outside the majority at step k, against the majority's first; without a
    majority (two records, or all apart), against the first record, and the rules decide which to blame."""
    groups: list[list[str]] = []
    for name, rec in records.items():
        home = next((g for g in groups if close(records[g[0]].params[k], rec.params[k], tol).all()), None)
        if home is None:
            groups.append([name])
        else:
            home.append(name)
    majority = next((g for g in groups if 2 * len(g) > len(records)), None)
    reference = majority or groups[0]
    outside = [name for group in groups if group is not reference for name in group]
    return [explain(records, reference[0], name, k, tol, majority is not None, lecture) for name in outside]


def _pair(text: str) -> Pair:
    a, b = text.split("~")
    return a, b


def _json(values: np.ndarray | list[float | None]) -> tuple[Number, ...]:
    """Numbers as JSON holds them: a non-finite one as its text ("nan", "inf"), which JSON has no number for."""
    return tuple(v if v is None or math.isfinite(v) else str(v) for v in list(np.asarray(values, dtype=object)))

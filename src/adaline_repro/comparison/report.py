"""The comparison's verdict and its words: whether the backends agree (every pair's differences, the first
diverging step), and the text every place it reaches says it with: reports/compare.json and .md,
reports/verdict.json, the compare stage's lines, the MLflow description, the check's and the sweep's
summaries. JSON is written and read only here (to_json / from_json); between modules it is a Report.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from adaline_repro.comparison.agreement import (
    EXACT_QUANTITIES,
    FLOAT_QUANTITIES,
    BackendOutputs,
    PairResult,
    compare_pair,
    tolerance_ratio,
)
from adaline_repro.comparison.causes import LECTURE, RULES, Cause, num, vec
from adaline_repro.comparison.divergence import Divergence, first_departure, first_divergence
from adaline_repro.comparison.replay import Lecture
from adaline_repro.core.params import CompareParams

QUANTITIES = FLOAT_QUANTITIES + EXACT_QUANTITIES
# metrics/<backend>.json's keys -> reports/verdict.json's: other names, so that `dvc exp show` need not
# prefix either with its file to tell them apart.
_SHARED = {"train_accuracy": "train_acc", "test_accuracy": "test_acc", "train_mse": "final_mse"}


@dataclass(frozen=True)
class Report:
    pairs: tuple[PairResult, ...]
    divergence: Divergence | None  # the first step at which parameters part, or part from the lecture's update
    tolerance_ratio: float | None = None  # the largest float difference in units of its tolerance
    follows_lecture: bool | None = None  # every update the lecture's, replayed; None: not replayed (no table)
    lecture_ratio: float | None = None  # the largest difference from the lecture's updates, in tolerance units

    @property
    def agree(self) -> bool:
        """Whether the backends agree with each other (whatever the lecture says)."""
        return all(p.passed for p in self.pairs)

    @property
    def passed(self) -> bool:
        return self.agree and self.follows_lecture is not False

    @property
    def headline(self) -> str:
        if self.passed:
            return "PASSED: the backends agree"
        return "FAILED: the backends differ" if not self.agree else "FAILED: the backends agree, not with the lecture"

    def largest(self, quantity: str) -> float | None:
        """The largest difference of a quantity over all pairs; None when some pair is not comparable."""
        values = [d.max_abs_diff for p in self.pairs for d in p.differences if d.quantity == quantity]
        return None if any(v is None for v in values) else max(values, default=0.0)

    def to_json(self) -> dict:
        """reports/compare.json: the verdict and every difference. The tolerances stay out (they are in
        params.yaml and compare.md), so a tolerance change that keeps the verdict leaves these bytes, and
        so the track stage downstream, untouched."""
        return {
            "passed": self.passed,
            "follows_lecture": self.follows_lecture,
            "first_divergence": None if self.divergence is None else self.divergence.to_json(),
            "largest_abs_diff": {q: self.largest(q) for q in QUANTITIES},
            "pairs": {f"{p.a}~{p.b}": {"passed": p.passed, **p.to_json()} for p in self.pairs},
        }

    @classmethod
    def from_json(cls, data: dict) -> Report:
        """A report read back from compare.json (or a sweep's journal), in the order it was written."""
        found = data["first_divergence"]
        pairs = tuple(PairResult.from_json(name, d, QUANTITIES) for name, d in data["pairs"].items())
        return cls(pairs, None if found is None else Divergence.from_json(found),
                   follows_lecture=data.get("follows_lecture"))  # fmt: skip

    def verdict(self, outputs: Sequence[BackendOutputs]) -> dict:
        """reports/verdict.json, the compare stage's metrics file (what `dvc exp show` puts beside each
        experiment's params): the verdict, the largest difference in units of the tolerance and as a
        number in scientific form (DVC rounds 4e-08 to 0.0), and, when the backends agree, the accuracies
        and final train MSE they share (each backend's own are in metrics/<backend>.json)."""
        found = [(self.largest(q), q) for q in FLOAT_QUANTITIES]
        known = [(v, q) for v, q in found if v is not None]
        if len(known) < len(found):
            largest = "not comparable"
        else:
            value, quantity = max(known)
            largest = f"{value:.1e} {quantity}"
        summary: dict = {"agree": self.passed, "tol_used": self.tolerance_ratio, "largest_diff": largest}
        if self.passed and outputs:
            shared = outputs[0].metrics
            summary |= {short: shared[key] for key, short in _SHARED.items() if key in shared}
        return summary

    def line(self) -> str:
        """The compare stage's one line when the backends agree."""
        used = "?" if self.tolerance_ratio is None else f"{self.tolerance_ratio:.2g}"
        return f"the backends agree: the largest difference is {used} of its tolerance"

    def failure_line(self) -> str:
        """Why compare failed, in one line: the quantities that differ, then the student's sentence."""
        failed = [q for q in QUANTITIES if any(not d.passed for p in self.pairs for d in p.differences
                                               if d.quantity == q)]  # fmt: skip
        why = sentence(self.divergence)
        what = f"differ in {', '.join(failed)}" if failed else "agree with each other, not with the lecture's update"
        return f"the backends {what}; {why[0].lower()}{why[1:]}"

    def markdown(self, tolerances: CompareParams) -> str:
        """compare.md. When a step diverges it leads with the student's sentence and the per-parameter
        evidence under it, then the table; otherwise the verdict, the table and "None"."""
        table = (
            f"**{self.headline}** (floats within atol={tolerances.atol:g}, rtol={tolerances.rtol:g}; "
            f"predictions and accuracies exactly).\n\n{self.difference_table()}{self._lecture_line()}"
        )
        if self.divergence:
            lead = f"{sentence(self.divergence)}\n\n{markdown(self.divergence)}"
            return f"# Backend comparison\n\n{lead}\n{table}"
        return f"# Backend comparison\n\n{table}\n{markdown(self.divergence)}"

    def _lecture_line(self) -> str:
        if not self.follows_lecture or self.lecture_ratio is None:  # read back from JSON, the ratio is not there
            return ""
        return (
            "\nEvery update of every backend is the lecture's, replayed in float64 from its own parameters on its "
            f"own minibatch (the largest difference: {self.lecture_ratio:.2g} of its tolerance).\n"
        )

    def difference_table(self) -> str:
        """The markdown table of the differences, one row per pair and quantity."""
        lines = ["| pair | quantity | max abs diff | max rel diff | at | result |", "|---|---|---|---|---|---|"]
        for p in self.pairs:
            for d in sorted(p.differences, key=lambda d: QUANTITIES.index(d.quantity)):
                rel = _fmt(d.max_rel_diff) if d.quantity in FLOAT_QUANTITIES else "-"
                result = "pass" if d.passed else "FAIL"
                lines.append(f"| {p.a} ~ {p.b} | {d.quantity} | {_fmt(d.max_abs_diff)} | {rel} | {d.at} | {result} |")
        return "\n".join(lines) + "\n"


def compare(outputs: Sequence[BackendOutputs], tol: CompareParams, lecture: Lecture | None = None) -> Report:
    """Every pair, in the order the backends are listed, and the first update step at which any part
    (`lecture`: the training data and learning rate, which let the cause rules replay updates, and hold every
    backend's every update to the lecture's: a departure before the backends part is the divergence)."""
    pairs = tuple(compare_pair(a, b, tol) for a, b in itertools.combinations(outputs, 2))
    records = {o.backend: o.steps for o in outputs}
    found = first_divergence(records, tol, lecture)
    if lecture is None or not all(lecture.covers(rec) for rec in records.values()):
        return Report(pairs, found, tolerance_ratio(outputs, tol))
    largest = max(float(lecture.gaps(rec, tol).max(initial=0.0)) for rec in records.values())
    if largest > 1:  # some update is not the lecture's: the divergence when it comes before the backends part
        found = first_departure(records, tol, lecture, None if found is None else found.step) or found
    return Report(pairs, found, tolerance_ratio(outputs, tol), largest <= 1, largest)


def _fmt(value: float | None) -> str:
    return "not comparable" if value is None else f"{value:.3g}"


# --- a divergence in words -----------------------------------------------------------------------------


def likely_causes(divergence: Divergence) -> str:
    """`module: missing zero_grad() (gradient accumulation)`, one per record outside the majority."""
    return "; ".join(c.text() for c in divergence.causes) or RULES["unexplained"]


def summary(divergence: Divergence | None) -> str:
    """One line: where the records part and the likely cause."""
    if divergence is None:
        return "no update step diverges: the parameters agree after every update"
    return f"first divergence at {divergence.label}; likely cause: {likely_causes(divergence)}"


def sentence(divergence: Divergence | None) -> str:
    """What a student can act on, in one sentence: which backend, at which step, what its update did next to
    the others', and the likely cause, or that no rule fits (the evidence is under it in the report)."""
    if divergence is None:
        return summary(None)
    parts = []
    for cause in divergence.causes:
        why = "no rule fits (the per-parameter evidence is below)" if cause.rule == "unexplained" else (
            f"likely cause: {cause.text()}")  # fmt: skip
        parts.append(f"at {divergence.label}, {_what_it_did(divergence, cause)}; {why}")
    text = "; ".join(parts) or f"at {divergence.label} the records part; no rule fits"
    return text[0].upper() + text[1:] + "."


def _what_it_did(divergence: Divergence, cause: Cause) -> str:
    """`module's update is 3 x manual's and autograd's in every parameter`, for the blamed record (or, when
    none is, the second of the pair against the first); against the lecture, `each backend's update is 3 x
    the lecture's ...` when they all share the cause."""
    ref, who = cause.pair
    if cause.backend and ref != LECTURE:
        who = cause.backend
        others = [n for n in divergence.backends if n not in (who, LECTURE)]
        ref = others[0]
    else:
        others = [ref]
    whose = f"every backend's update ({', '.join(cause.shared)})" if cause.shared else f"{who}'s update"
    names = ["the lecture" if n == LECTURE else n for n in others]
    them = " and ".join(f"{n}'s" for n in names)
    at = divergence.backends[who]
    if divergence.step == 0:
        return f"{who} starts from {vec(at.after or [])}, not from where {' and '.join(names)} start"
    if at.update is None:
        go = "goes" if len(names) == 1 else "go"
        return f"{who} ends after {at.updates} updates while {' and '.join(names)} {go} on"
    ratios = divergence.update_ratios.get((ref, who))
    if ratios is None:  # stored the other way round: ref's update over who's
        ratios = [1 / r if isinstance(r, float) and r else None for r in divergence.update_ratios[who, ref]]
    if any(not isinstance(r, float) for r in ratios):
        return f"{whose} is {vec(at.update)}, unlike {them}"
    if max(ratios) - min(ratios) > 1e-3 * max(abs(r) for r in ratios):
        return f"{whose} is {vec(ratios)} x {them}, parameter by parameter"
    if abs(ratios[0] - 1) <= 1e-5:  # float32 rounding of the updates; a learning rate 1.001 x is not this
        return f"{whose} is the same as {them}"
    return f"{whose} is {ratios[0]:.4g} x {them} in every parameter"


def markdown(divergence: Divergence | None) -> str:
    """The report section: the step, each record's parameters before it and its update, the ratios, causes."""
    if divergence is None:
        return "## First divergence\n\nNone: the parameters agree after every update step.\n"
    names = divergence.parameters
    apart = ", ".join(f"{a}~{b}" for a, b in divergence.apart)
    lines = ["## First divergence", "", f"At **{divergence.label}** ({apart} apart).", ""]
    if divergence.step:
        lines += ["| backend | minibatch rows | " + " | ".join(f"{n} before | {n} update" for n in names) + " |"]
        lines += ["|---|---|" + "---|---|" * len(names)]
        for name, at in divergence.backends.items():
            if at.update is None:
                lines.append(f"| {name} | (ends after {at.updates} updates) |" + " - | - |" * len(names))
                continue
            cells = [f"{num(b, 7)} | {num(u, 7)}" for b, u in zip(at.before or (), at.update, strict=False)]
            lines.append(f"| {name} | {' '.join(map(str, at.rows))} | " + " | ".join(cells) + " |")
        lines += ["", "| pair | update ratio (" + ", ".join(names) + ") |", "|---|---|"]
        lines += [f"| {a}~{b} | {vec(ratios)} |" for (a, b), ratios in divergence.update_ratios.items()]
    else:
        lines += ["| backend | " + " | ".join(f"{n} at the start" for n in names) + " |", "|---|" + "---|" * len(names)]
        for name, at in divergence.backends.items():
            lines.append(f"| {name} | " + " | ".join(num(v, 7) for v in at.after or ()) + " |")
    lines += ["", "**Likely cause:**", ""]
    lines += [f"- {c.text()}: {c.evidence}." for c in divergence.causes] or ["- unexplained"]
    return "\n".join(lines) + "\n"

"""Where and why backends part: the first update step at which two records' parameters differ beyond the
compare tolerances, what each backend did at that step, and the likely cause.

Each cause is a rule with a signature in the records (docs/divergence.md has one paragraph per rule); a
rule names a cause only when a single update reproduces the evidence within the compare tolerances.
Anything else is "unexplained", with the numbers. Compare runs this across backends; the check runs it
across a backend's committed and fresh records.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from adaline_repro.params import CompareParams
from adaline_repro.results import Steps

# rule -> what the report calls it
RULES = {
    "initialisation": "different initialisation",
    "shuffle_order": "different minibatch or shuffle order",
    "missing_zero_grad": "missing zero_grad() (gradient accumulation)",
    "sum_not_mean": "sum instead of mean in the loss",
    "learning_rate": "learning rate off by a factor",
    "unexplained": "unexplained",
}
# An update counts for the ratio rules only where it exceeds the tolerance this many times over: smaller
# ones are mostly the rounding of the parameters they are differences of.
_SIGNIFICANT = 10.0
_RATIO_RTOL = 1e-3  # how close an update ratio must come to the minibatch size for sum_not_mean


def close(a: np.ndarray, b: np.ndarray, tol: CompareParams) -> np.ndarray:
    """|a - b| <= atol + rtol * max(|a|, |b|), elementwise; NaN is never close to anything, NaN included."""
    scale = np.maximum(np.abs(a), np.abs(b))
    with np.errstate(invalid="ignore"):
        return np.abs(a - b) <= tol.atol + tol.rtol * scale


@dataclass(frozen=True)
class Cause:
    rule: str  # a key of RULES
    pair: tuple[str, str]  # (reference, other): the records compared
    backend: str | None  # the one of the pair the evidence points at; None when it cannot say which
    evidence: str  # one sentence, with the numbers

    def as_dict(self) -> dict:
        return {
            "backend": self.backend,
            "evidence": self.evidence,
            "pair": list(self.pair),
            "rule": self.rule,
            "title": RULES[self.rule],
        }


@dataclass(frozen=True)
class Divergence:
    """The first step at which any two records part, and what every record did there."""

    step: int
    records: Mapping[str, Steps]
    apart: tuple[tuple[str, str], ...]  # the pairs beyond tolerance at this step
    causes: tuple[Cause, ...]

    def as_dict(self) -> dict:
        k = self.step
        first = next(iter(self.records.values()))
        backends = {}
        for name, rec in self.records.items():
            entry = {"rows": list(rec.rows[k]), "after": rec.params[k].tolist()}
            if k:
                entry["before"] = rec.params[k - 1].tolist()
                entry["update"] = (rec.params[k] - rec.params[k - 1]).tolist()
            backends[name] = entry
        return {
            "step": k,
            "epoch": int(first.epoch[k]),
            "batch": int(first.batch[k]),
            "batches_per_epoch": first.batches_per_epoch,
            "label": first.label(k),
            "parameters": list(first.names),
            "apart": [f"{a}~{b}" for a, b in self.apart],
            "backends": backends,
            "update_ratios": {
                f"{a}~{b}": _ratios(self.records[a], self.records[b], k)
                for a, b in itertools.combinations(self.records, 2)
                if k
            },
            "likely_cause": [c.as_dict() for c in self.causes],
        }


def first_divergence(records: Mapping[str, Steps], tol: CompareParams) -> Divergence | None:
    """The first step (0: the initial parameters) at which any pair's parameters differ beyond `tol`, over the
    steps all records have; None when they agree at every one."""
    length = min(len(r.params) for r in records.values())
    if length == 0 or len({r.names for r in records.values()}) != 1:
        return None
    firsts = {}
    for a, b in itertools.combinations(records, 2):
        apart = np.flatnonzero(~close(records[a].params[:length], records[b].params[:length], tol).all(axis=1))
        if apart.size:
            firsts[a, b] = int(apart[0])
    if not firsts:
        return None
    k = min(firsts.values())
    return Divergence(k, records, tuple(p for p, s in firsts.items() if s == k), tuple(_causes(records, k, tol)))


def _causes(records: Mapping[str, Steps], k: int, tol: CompareParams) -> list[Cause]:
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
    return [_explain(records, reference[0], name, k, tol, blame_known=majority is not None) for name in outside]


def _explain(
    records: Mapping[str, Steps], ref: str, other: str, k: int, tol: CompareParams, blame_known: bool
) -> Cause:
    r, o = records[ref], records[other]
    pair = (ref, other)
    suspect = other if blame_known else None
    if k == 0:
        return Cause(
            "initialisation", pair, suspect, f"{other} starts from {_vec(o.params[0])}, {ref} from {_vec(r.params[0])}"
        )
    if set(r.rows[k]) != set(o.rows[k]):
        return Cause(
            "shuffle_order",
            pair,
            suspect,
            f"{r.label(k)} takes rows {_rows(o.rows[k])} in {other} and rows {_rows(r.rows[k])} in {ref}",
        )
    directions = [(r, o, ref, other)] if blame_known else [(r, o, ref, other), (o, r, other, ref)]
    for good, bad, good_name, bad_name in directions:
        start = _accumulated_since(good, bad, k, tol)
        if start is not None:
            return Cause(
                "missing_zero_grad",
                pair,
                bad_name,
                f"{bad_name}'s update at step {k} is the sum of the fresh gradients' updates of steps {start}-{k} "
                f"({good_name}'s updates there): its gradients were not zeroed since step {start}",
            )
    ratio = _constant_ratio(r, o, k, tol)
    if ratio is not None:
        n = len(o.rows[k])
        for factor, blamed, unblamed in ((ratio, other, ref), (1 / ratio, ref, other)):
            if n > 1 and abs(factor - n) <= _RATIO_RTOL * n and (blamed == other or not blame_known):
                return Cause(
                    "sum_not_mean",
                    pair,
                    blamed,
                    f"{blamed}'s update at step {k} is {factor:.6g} x {unblamed}'s, the minibatch's {n} rows: "
                    "its loss sums over the minibatch instead of averaging (or its learning rate is exactly "
                    f"{n} x too large)",
                )
        if ratio > 0:
            return Cause(
                "learning_rate",
                pair,
                suspect,
                f"{other}'s update at step {k} is {ratio:.6g} x {ref}'s in every parameter: "
                f"{other}'s learning rate is {ratio:.6g} x {ref}'s",
            )
    return Cause(
        "unexplained",
        pair,
        suspect,
        f"at {r.label(k)} {other} updates by {_vec(o.params[k] - o.params[k - 1])}, {ref} by "
        f"{_vec(r.params[k] - r.params[k - 1])} (ratios {_vec(_ratios(r, o, k))}), from parameters "
        f"{_vec(o.params[k - 1])} and {_vec(r.params[k - 1])}; no rule reproduces this",
    )


def _accumulated_since(good: Steps, bad: Steps, k: int, tol: CompareParams) -> int | None:
    """The earliest step s < k such that bad's update at k equals the sum of good's updates s..k, which is
    what gradients that were never zeroed since step s give: good's updates are the fresh gradients (times
    the learning rate) at the parameters both shared until k."""
    if k < 2:
        return None
    updates = np.diff(good.params[: k + 1], axis=0)  # (k, p): updates 1..k
    windows = np.cumsum(updates[::-1], axis=0)[::-1]  # windows[s - 1] = sum of updates s..k
    matches = np.flatnonzero(close(bad.params[k - 1] + windows[: k - 1], bad.params[k], tol).all(axis=1))
    return int(matches[0]) + 1 if matches.size else None


def _constant_ratio(ref: Steps, other: Steps, k: int, tol: CompareParams) -> float | None:
    """The one factor that turns ref's update at k into other's in every parameter, within `tol`, when at
    least two parameters' updates are large enough to tell; else None."""
    before, after = ref.params[k - 1], ref.params[k]
    update_ref, update_other = after - before, other.params[k] - other.params[k - 1]
    noise = tol.atol + tol.rtol * np.maximum(np.abs(before), np.abs(after))
    significant = np.abs(update_ref) > _SIGNIFICANT * noise
    if np.count_nonzero(significant) < 2:
        return None
    num = math.fsum((update_other * update_ref)[significant].tolist())
    den = math.fsum((update_ref * update_ref)[significant].tolist())
    ratio = num / den
    if not close(other.params[k - 1] + ratio * update_ref, other.params[k], tol).all():
        return None
    return ratio


def _ratios(a: Steps, b: Steps, k: int) -> list[float | None]:
    """b's update at step k over a's, per parameter; None where a's is zero."""
    ua, ub = a.params[k] - a.params[k - 1], b.params[k] - b.params[k - 1]
    return [None if x == 0 else float(y / x) for x, y in zip(ua.tolist(), ub.tolist(), strict=True)]


def _vec(values: np.ndarray | list[float | None]) -> str:
    return "[" + ", ".join("-" if v is None else f"{v:.6g}" for v in list(values)) + "]"


def _rows(rows: tuple[int, ...]) -> str:
    return "{" + " ".join(map(str, sorted(rows))) + "}"


# --- text, from the report's dict (reports/compare.json), for every place the verdict reaches ---------------


def cause_text(cause: dict) -> str:
    """`module: missing zero_grad() (gradient accumulation)`."""
    who = cause["backend"] or " or ".join(cause["pair"])
    return f"{who}: {cause['title']}"


def likely_causes(divergence: dict) -> str:
    """`module: missing zero_grad() (gradient accumulation)`, one per record outside the majority."""
    return "; ".join(cause_text(c) for c in divergence["likely_cause"]) or RULES["unexplained"]


def summary(divergence: dict | None) -> str:
    """One line: where the records part and the likely cause."""
    if divergence is None:
        return "no update step diverges: the parameters agree after every update"
    return f"first divergence at {divergence['label']}; likely cause: {likely_causes(divergence)}"


def markdown(divergence: dict | None) -> str:
    """The report section: the step, each record's parameters before it and its update, the ratios, causes."""
    if divergence is None:
        return "## First divergence\n\nNone: the parameters agree after every update step.\n"
    names = divergence["parameters"]
    lines = ["## First divergence", "", f"At **{divergence['label']}** ({', '.join(divergence['apart'])} apart).", ""]
    if divergence["step"]:
        lines += ["| backend | minibatch rows | " + " | ".join(f"{n} before | {n} update" for n in names) + " |"]
        lines += ["|---|---|" + "---|---|" * len(names)]
        for name, entry in divergence["backends"].items():
            cells = [f"{b:.7g} | {u:.7g}" for b, u in zip(entry["before"], entry["update"], strict=True)]
            lines.append(f"| {name} | {' '.join(map(str, entry['rows']))} | " + " | ".join(cells) + " |")
        lines += ["", "| pair | update ratio (" + ", ".join(names) + ") |", "|---|---|"]
        lines += [f"| {pair} | {_vec(ratios)} |" for pair, ratios in divergence["update_ratios"].items()]
    else:
        lines += ["| backend | " + " | ".join(f"{n} at the start" for n in names) + " |", "|---|" + "---|" * len(names)]
        for name, entry in divergence["backends"].items():
            lines.append(f"| {name} | " + " | ".join(f"{v:.7g}" for v in entry["after"]) + " |")
    lines += ["", "**Likely cause:**", ""]
    lines += [f"- {cause_text(c)}: {c['evidence']}." for c in divergence["likely_cause"]] or ["- unexplained"]
    return "\n".join(lines) + "\n"

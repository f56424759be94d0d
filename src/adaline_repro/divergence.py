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
    "sign": "update in the wrong direction",
    "no_update": "an update that was not applied",
    "drift": "a gradual drift (this step's update matches)",
    "length": "a different number of updates",
    "non_finite": "parameters that are not finite",
    "parameters": "different parameters",
    "unexplained": "unexplained",
}
# An update counts for the ratio rules only where it exceeds the tolerance this many times over: smaller
# ones are mostly the rounding of the parameters they are differences of.
_SIGNIFICANT = 10.0
_RATIO_RTOL = 1e-3  # how close an update ratio must come to the minibatch size for sum_not_mean


def close(a: np.ndarray, b: np.ndarray, tol: CompareParams) -> np.ndarray:
    """|a - b| <= atol + rtol * max(|a|, |b|), elementwise, for finite values; an infinity is close only to
    itself, and NaN to nothing, NaN included."""
    scale = np.maximum(np.abs(a), np.abs(b))
    with np.errstate(invalid="ignore", over="ignore"):
        within = np.isfinite(a) & np.isfinite(b) & (np.abs(a - b) <= tol.atol + tol.rtol * scale)
        return within | (np.isinf(a) & (a == b))


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
        has = {name: rec for name, rec in self.records.items() if _has(rec, k)}
        first = next(iter(has.values()), next(iter(self.records.values())))
        backends = {}
        for name, rec in self.records.items():
            if name not in has:  # a shorter record: it has no step k
                backends[name] = {"rows": [], "updates": max(rec.updates, 0)}
                continue
            entry = {"rows": list(rec.rows[k]), "after": _json(rec.params[k])}
            if k:
                entry["before"] = _json(rec.params[k - 1])
                with np.errstate(invalid="ignore"):
                    entry["update"] = _json(rec.params[k] - rec.params[k - 1])
            backends[name] = entry
        return {
            "step": k,
            "epoch": int(first.epoch[k]) if has else 0,
            "batch": int(first.batch[k]) if has else 0,
            "batches_per_epoch": first.batches_per_epoch,
            "label": first.label(k) if has else f"step {k}",
            "parameters": list(first.names),
            "apart": [f"{a}~{b}" for a, b in self.apart],
            "backends": backends,
            "update_ratios": {
                f"{a}~{b}": _json(_ratios(has[a], has[b], k))
                for a, b in itertools.combinations(has, 2)
                if k and has[a].names == has[b].names
            },
            "likely_cause": [c.as_dict() for c in self.causes],
        }


def first_divergence(records: Mapping[str, Steps], tol: CompareParams) -> Divergence | None:
    """The first step (0: the initial parameters) at which any pair's parameters differ beyond `tol`, over the
    steps all records have; past those, the first step a shorter record lacks. None when the records agree
    at every step and have the same length. Records of different parameters part at step 0."""
    pairs = list(itertools.combinations(records, 2))
    if not pairs:
        return None
    if len({r.names for r in records.values()}) != 1:
        cause = Cause("parameters", pairs[0], None, "; ".join(f"{n} has {', '.join(r.names) or 'none'}"
                                                             for n, r in records.items()))  # fmt: skip
        return Divergence(0, records, tuple(pairs), (cause,))
    length = min(len(r.params) for r in records.values())
    firsts = {}
    for a, b in pairs:
        apart = np.flatnonzero(~close(records[a].params[:length], records[b].params[:length], tol).all(axis=1))
        if apart.size:
            firsts[a, b] = int(apart[0])
    if firsts:
        k = min(firsts.values())
        return Divergence(k, records, tuple(p for p, s in firsts.items() if s == k), tuple(_causes(records, k, tol)))
    if len({len(r.params) for r in records.values()}) == 1:
        return None
    apart = tuple((a, b) for a, b in pairs if len(records[a].params) != len(records[b].params))
    counts = ", ".join(f"{n} {max(len(r.params) - 1, 0)}" for n, r in records.items())
    short = min(records, key=lambda n: len(records[n].params))
    evidence = (f"the records agree at every step they share (0-{length - 1}), then end apart: updates {counts} "
                "(other epochs, minibatches, or a loop that stops early)")  # fmt: skip
    return Divergence(length, records, apart, (Cause("length", apart[0], short, evidence),))


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
    broken = [n for n, rec in ((ref, r), (other, o)) if not np.isfinite(rec.params[k]).all()]
    if broken:
        return Cause(
            "non_finite",
            pair,
            broken[0] if len(broken) == 1 else suspect,
            f"at {r.label(k)} {' and '.join(broken)} holds {_vec((r if broken[0] == ref else o).params[k])}: "
            "training overflowed (a learning rate too large for the data) or divided by zero",
        )
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
    for good, bad, good_name, bad_name in directions:
        if _still(bad, k, tol) and not _still(good, k, tol):
            return Cause(
                "no_update",
                pair,
                bad_name,
                f"{bad_name}'s parameters did not change at {r.label(k)} while {good_name}'s moved by "
                f"{_vec(good.params[k] - good.params[k - 1])}: the update was computed but not applied, or the "
                "minibatch was skipped",
            )
    if close(o.params[k - 1] + (r.params[k] - r.params[k - 1]), o.params[k], tol).all():
        gap = np.abs(o.params[k - 1] - r.params[k - 1])
        return Cause(
            "drift",
            pair,
            suspect,
            f"the update at {r.label(k)} is the same in both within the tolerances; the parameters were already "
            f"{_vec(gap)} apart before it, a difference built up over earlier updates (no rule names one step)",
        )
    ratio = _constant_ratio(r, o, k, tol)
    if ratio is not None and ratio < 0:
        return Cause(
            "sign",
            pair,
            suspect,
            f"{other}'s update at step {k} is {ratio:.6g} x {ref}'s in every parameter: one of them moves up the "
            "gradient (`+=` for `-=`, or the error's sign flipped)",
        )
    if ratio is not None and ratio > 0:
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
        # A factor near 1 counts: the drift rule above has already found that 1 itself does not fit.
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


def _has(rec: Steps, k: int) -> bool:
    return k < len(rec.params)


def _still(rec: Steps, k: int, tol: CompareParams) -> bool:
    """Whether the record's parameters are unchanged by update k, within `tol`."""
    return bool(close(rec.params[k - 1], rec.params[k], tol).all())


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
    ratio = num / den if den else math.nan
    if not math.isfinite(ratio) or ratio == 0:
        return None  # a zero factor is no update (the no_update rule), not a learning rate
    with np.errstate(invalid="ignore", over="ignore"):
        if not close(other.params[k - 1] + ratio * update_ref, other.params[k], tol).all():
            return None
    return ratio


def _ratios(a: Steps, b: Steps, k: int) -> list[float | None]:
    """b's update at step k over a's, per parameter; None where a's is zero or either is not finite."""
    with np.errstate(invalid="ignore", over="ignore"):
        ua, ub = a.params[k] - a.params[k - 1], b.params[k] - b.params[k - 1]
    pairs = zip(ua.tolist(), ub.tolist(), strict=True)
    return [float(y / x) if x != 0 and math.isfinite(x) and math.isfinite(y) else None for x, y in pairs]


def _json(values: np.ndarray | list[float | None]) -> list[float | str | None]:
    """Numbers as JSON holds them: a non-finite one as its text ("nan", "inf"), which JSON has no number for."""
    return [v if v is None or math.isfinite(v) else str(v) for v in list(np.asarray(values, dtype=object))]


def _num(v: float | str | None, digits: int = 6) -> str:
    return "-" if v is None else v if isinstance(v, str) else f"{v:.{digits}g}"


def _vec(values: np.ndarray | list[float | str | None]) -> str:
    return "[" + ", ".join(_num(v) for v in list(values)) + "]"


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
            if "update" not in entry:
                lines.append(f"| {name} | (ends after {entry['updates']} updates) |" + " - | - |" * len(names))
                continue
            cells = [f"{_num(b, 7)} | {_num(u, 7)}" for b, u in zip(entry["before"], entry["update"], strict=False)]
            lines.append(f"| {name} | {' '.join(map(str, entry['rows']))} | " + " | ".join(cells) + " |")
        lines += ["", "| pair | update ratio (" + ", ".join(names) + ") |", "|---|---|"]
        lines += [f"| {pair} | {_vec(ratios)} |" for pair, ratios in divergence["update_ratios"].items()]
    else:
        lines += ["| backend | " + " | ".join(f"{n} at the start" for n in names) + " |", "|---|" + "---|" * len(names)]
        for name, entry in divergence["backends"].items():
            lines.append(f"| {name} | " + " | ".join(_num(v, 7) for v in entry.get("after", [])) + " |")
    lines += ["", "**Likely cause:**", ""]
    lines += [f"- {cause_text(c)}: {c['evidence']}." for c in divergence["likely_cause"]] or ["- unexplained"]
    return "\n".join(lines) + "\n"

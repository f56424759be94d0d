"""Where backends part: the first update step at which two records' parameters differ beyond the compare
tolerances, what each backend did at that step, and the likely cause (causes.py: the rules; replay.py: the
lecture's update replayed to test them). Compare runs this across backends; the check runs it across a
backend's committed and fresh records.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from adaline_repro.causes import RULES, Cause, explain, num, ratios, vec
from adaline_repro.params import CompareParams
from adaline_repro.replay import Lecture
from adaline_repro.results import Steps
from adaline_repro.tolerance import close


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
                f"{a}~{b}": _json(ratios(has[a], has[b], k))
                for a, b in itertools.combinations(has, 2)
                if k and has[a].names == has[b].names
            },
            "likely_cause": [c.as_dict() for c in self.causes],
        }


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
        return Divergence(0, records, tuple(pairs), (cause,))
    length = min(len(r.params) for r in records.values())
    firsts = {}
    for a, b in pairs:
        apart = np.flatnonzero(~close(records[a].params[:length], records[b].params[:length], tol).all(axis=1))
        if apart.size:
            firsts[a, b] = int(apart[0])
    if firsts:
        k = min(firsts.values())
        return Divergence(
            k, records, tuple(p for p, s in firsts.items() if s == k), tuple(_causes(records, k, tol, lecture))
        )
    if len({len(r.params) for r in records.values()}) == 1:
        return None
    apart = tuple((a, b) for a, b in pairs if len(records[a].params) != len(records[b].params))
    counts = ", ".join(f"{n} {max(len(r.params) - 1, 0)}" for n, r in records.items())
    short = min(records, key=lambda n: len(records[n].params))
    evidence = (f"the records agree at every step they share (0-{length - 1}), then end apart: updates {counts} "
                "(other epochs, minibatches, or a loop that stops early)")  # fmt: skip
    return Divergence(length, records, apart, (Cause("length", apart[0], short, evidence),))


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


def _has(rec: Steps, k: int) -> bool:
    return k < len(rec.params)


def _json(values: np.ndarray | list[float | None]) -> list[float | str | None]:
    """Numbers as JSON holds them: a non-finite one as its text ("nan", "inf"), which JSON has no number for."""
    return [v if v is None or math.isfinite(v) else str(v) for v in list(np.asarray(values, dtype=object))]


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


def sentence(divergence: dict | None) -> str:
    """What a student can act on, in one sentence: which backend, at which step, what its update did next to
    the others', and the likely cause, or that no rule fits (the evidence is under it in the report)."""
    if divergence is None:
        return summary(None)
    parts = []
    for cause in divergence["likely_cause"]:
        why = "no rule fits (the per-parameter evidence is below)" if cause["rule"] == "unexplained" else (
            f"likely cause: {cause_text(cause)}")  # fmt: skip
        parts.append(f"at {divergence['label']}, {_what_it_did(divergence, cause)}; {why}")
    text = "; ".join(parts) or f"at {divergence['label']} the records part; no rule fits"
    return text[0].upper() + text[1:] + "."


def _what_it_did(divergence: dict, cause: dict) -> str:
    """`module's update is 3 x manual's and autograd's in every parameter`, for the blamed record (or, when
    none is, the second of the pair against the first)."""
    ref, who = cause["pair"]
    if cause["backend"]:
        who = cause["backend"]
        others = [n for n in divergence["backends"] if n != who]
        ref = others[0]
    else:
        others = [ref]
    them = " and ".join(f"{n}'s" for n in others)
    entry = divergence["backends"][who]
    if divergence["step"] == 0:
        return f"{who} starts from {vec(entry.get('after', []))}, not from where {' and '.join(others)} start"
    if "update" not in entry:
        go = "goes" if len(others) == 1 else "go"
        return f"{who} ends after {entry['updates']} updates while {' and '.join(others)} {go} on"
    ratios = divergence["update_ratios"].get(f"{ref}~{who}")
    if ratios is None:  # stored the other way round: ref's update over who's
        ratios = [1 / r if isinstance(r, float) and r else None for r in divergence["update_ratios"][f"{who}~{ref}"]]
    if any(not isinstance(r, float) for r in ratios):
        return f"{who}'s update is {vec(entry['update'])}, unlike {them}"
    if max(ratios) - min(ratios) > 1e-3 * max(abs(r) for r in ratios):
        return f"{who}'s update is {vec(ratios)} x {them}, parameter by parameter"
    if abs(ratios[0] - 1) <= 1e-5:  # float32 rounding of the updates; a learning rate 1.001 x is not this
        return f"{who}'s update is the same as {them}"
    return f"{who}'s update is {ratios[0]:.4g} x {them} in every parameter"


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
            cells = [f"{num(b, 7)} | {num(u, 7)}" for b, u in zip(entry["before"], entry["update"], strict=False)]
            lines.append(f"| {name} | {' '.join(map(str, entry['rows']))} | " + " | ".join(cells) + " |")
        lines += ["", "| pair | update ratio (" + ", ".join(names) + ") |", "|---|---|"]
        lines += [f"| {pair} | {vec(ratios)} |" for pair, ratios in divergence["update_ratios"].items()]
    else:
        lines += ["| backend | " + " | ".join(f"{n} at the start" for n in names) + " |", "|---|" + "---|" * len(names)]
        for name, entry in divergence["backends"].items():
            lines.append(f"| {name} | " + " | ".join(num(v, 7) for v in entry.get("after", [])) + " |")
    lines += ["", "**Likely cause:**", ""]
    lines += [f"- {cause_text(c)}: {c['evidence']}." for c in divergence["likely_cause"]] or ["- unexplained"]
    return "\n".join(lines) + "\n"

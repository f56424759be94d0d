"""The sweep's Markdown summary (summary.md): how many trials agree, every trial whose backends differ with
its first diverging step and likely cause (the divergence locator's line), and the accuracy across seeds at
the lecture's settings, with where the committed run's accuracy falls among them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from adaline_repro import divergence
from adaline_repro.sweep.grid import Trial
from adaline_repro.sweep.table import AGREE, DIFFER, ERROR, summary, swept_keys, value, verdict

SEEDS = ("prepare.seed", "train.seed")  # what "across seeds" varies; every other key is a setting


def markdown(trials: Sequence[Trial], records: dict[str, dict], raw: dict, committed: dict[str, dict]) -> str:
    """`raw` is params.yaml (the lecture's settings); `committed` each backend's metrics as the checkout's
    own run wrote them (empty where there is none)."""
    counts = summary(trials, records)
    share = "" if counts["agree_share"] is None else f" ({100 * counts['agree_share']:.1f} % of those that ran)"
    lines = [
        "# Sweep summary",
        "",
        f"{counts['trials']} trials: **{counts[AGREE]} agree**{share}, {counts[DIFFER]} differ, "
        f"{counts[ERROR]} failed (a stage refused the configuration).",
        "",
    ]
    lines += _differing(trials, records)
    lines += _at_the_lecture_settings(trials, records, raw, committed)
    return "\n".join(lines) + "\n"


def _settings(trial: Trial, record: dict, keys: Sequence[str]) -> str:
    return " ".join(f"{k}={value(record, k)}" for k in keys) or trial.id


def _differing(trials: Sequence[Trial], records: dict[str, dict]) -> list[str]:
    keys = swept_keys(trials)
    differ = [t for t in trials if verdict(records[t.id]) == DIFFER]
    lines = ["## Trials whose backends differ", ""]
    if not differ:
        return [*lines, "None.", ""]
    lines += ["| trial | settings | where and why the backends part |", "|---|---|---|"]
    for trial in differ:
        record = records[trial.id]
        line = divergence.sentence(record["compare"].get("first_divergence"))
        lines.append(f"| {trial.id} | {_settings(trial, record, keys)} | {line} |")
    return [*lines, ""]


def _at_the_lecture_settings(
    trials: Sequence[Trial], records: dict[str, dict], raw: dict, committed: dict[str, dict]
) -> list[str]:
    keys = [k for k in swept_keys(trials) if k not in SEEDS]
    lecture = {k: value({"params": raw}, k) for k in keys}
    chosen = [records[t.id] for t in trials if all(value(records[t.id], k) == v for k, v in lecture.items())]
    ran = [r for r in chosen if not r.get("error")]
    where = ", ".join(f"{k}={v}" for k, v in lecture.items()) or "params.yaml's settings"
    lines = [f"## Accuracy across seeds at the lecture's settings ({where})", ""]
    if not ran:
        return [*lines, "No trial of this sweep ran at these settings.", ""]
    backend = raw["train"]["backends"][0]  # they agree here, or the table above lists the trial
    lines += [f"{len(ran)} trials over {', '.join(k for k in SEEDS if k in swept_keys(trials)) or 'no seed'}; "
              f"{backend}'s accuracy (how many trials reach each value):", ""]  # fmt: skip
    for metric in ("train_accuracy", "test_accuracy"):
        seen = Counter(r["metrics"][backend][metric] for r in ran)
        mine = committed.get(backend, {}).get(metric)
        lines.append(f"- **{metric}**: " + ", ".join(f"{_pct(a)} ({n})" for a, n in sorted(seen.items())))
        if mine is not None:
            below = sum(n for a, n in seen.items() if a < mine)
            same = seen.get(mine, 0)
            lines.append(f"  - the committed run (params.yaml's own seeds), {_pct(mine)}: {below} of {len(ran)} "
                         f"trials score lower, {same} the same, {len(ran) - below - same} higher")  # fmt: skip
    return [*lines, ""]


def _pct(x: float) -> str:
    return f"{100 * x:.2f} %"

"""The sweep's Markdown summary (summary.md), read off the results frame (table.py): how many trials agree,
every trial whose backends differ with its first diverging step and likely cause (the divergence locator's
sentence), and the accuracy across seeds at the lecture's settings, with where the committed run's accuracy
falls among them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from adaline_repro.sweep.table import AGREE, DIFFER, ERROR, summary, value

SEEDS = ("prepare.seed", "train.seed")  # what "across seeds" varies; every other key is a setting


def markdown(results: pd.DataFrame, keys: Sequence[str], raw: dict, committed: Mapping[str, dict]) -> str:
    """`keys`: the swept keys (columns of `results`); `raw` is params.yaml (the lecture's settings);
    `committed` each backend's metrics as the checkout's own run wrote them (empty where there is none)."""
    counts = summary(results)
    share = "" if counts["agree_share"] is None else f" ({100 * counts['agree_share']:.1f} % of those that ran)"
    lines = [
        "# Sweep summary",
        "",
        f"{counts['trials']} trials: **{counts[AGREE]} agree**{share}, {counts[DIFFER]} differ, "
        f"{counts[ERROR]} failed (a stage refused the configuration).",
        "",
    ]
    lines += _differing(results, keys)
    lines += _at_the_lecture_settings(results, keys, raw, committed)
    return "\n".join(lines) + "\n"


def _differing(results: pd.DataFrame, keys: Sequence[str]) -> list[str]:
    differ = results[results["verdict"] == DIFFER]
    lines = ["## Trials whose backends differ", ""]
    if differ.empty:
        return [*lines, "None.", ""]
    lines += ["| trial | settings | where and why the backends part |", "|---|---|---|"]
    for _, row in differ.iterrows():
        settings = " ".join(f"{k}={row[k]}" for k in keys) or row["trial"]
        lines.append(f"| {row['trial']} | {settings} | {row['sentence']} |")
    return [*lines, ""]


def _at_the_lecture_settings(
    results: pd.DataFrame, keys: Sequence[str], raw: dict, committed: Mapping[str, dict]
) -> list[str]:
    settings = {k: value(raw, k) for k in keys if k not in SEEDS}
    at = results[(results[list(settings)] == pd.Series(settings)).all(axis=1)] if settings else results
    ran = at[at["verdict"] != ERROR]
    where = ", ".join(f"{k}={v}" for k, v in settings.items()) or "params.yaml's settings"
    lines = [f"## Accuracy across seeds at the lecture's settings ({where})", ""]
    if ran.empty:
        return [*lines, "No trial of this sweep ran at these settings.", ""]
    backend = raw["train"]["backends"][0]  # they agree here, or the table above lists the trial
    seeds = ", ".join(k for k in SEEDS if k in keys) or "no seed"
    lines += [f"{len(ran)} trials over {seeds}; {backend}'s accuracy (how many trials reach each value):", ""]
    for metric in ("train_accuracy", "test_accuracy"):
        seen = ran[f"{backend}.{metric}"].value_counts().sort_index()
        mine = committed.get(backend, {}).get(metric)
        lines.append(f"- **{metric}**: " + ", ".join(f"{_pct(a)} ({n})" for a, n in seen.items()))
        if mine is not None:
            below, same = int(seen[seen.index < mine].sum()), int(seen.get(mine, 0))
            lines.append(f"  - the committed run (params.yaml's own seeds), {_pct(mine)}: {below} of {len(ran)} "
                         f"trials score lower, {same} the same, {len(ran) - below - same} higher")  # fmt: skip
    return [*lines, ""]


def _pct(x: float) -> str:
    return f"{100 * x:.2f} %"

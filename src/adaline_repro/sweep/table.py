"""The sweep's results: one row per trial in the grid's order, whatever order they finished in and wherever
they ran, written as deterministic text (the same trials give the same bytes on 1 worker, 2 or a cluster).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

from adaline_repro.files import csv_text, float_text, json_text
from adaline_repro.sweep.grid import Trial

AGREE, DIFFER, ERROR = "agree", "differ", "error"
METRICS = ("train_accuracy", "test_accuracy", "train_mse")


def swept_keys(trials: Sequence[Trial]) -> list[str]:
    """The params keys the grid varies, in the order the `-S` values name them."""
    keys: list[str] = []
    for trial in trials:
        for override in trial.overrides:
            key = override.lstrip("+~").split("=", 1)[0].strip()
            if key not in keys:
                keys.append(key)
    return keys


def verdict(record: dict) -> str:
    if record.get("error"):
        return ERROR
    return AGREE if record["compare"]["passed"] else DIFFER


def value(record: dict, key: str) -> object:
    """A record's value of a dotted params key."""
    node: object = record.get("params")
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def backends(records: Sequence[dict]) -> list[str]:
    """Every backend any trial trained, in first-seen order."""
    seen: list[str] = []
    for record in records:
        for backend in (record.get("params") or {}).get("train", {}).get("backends", []):
            if backend not in seen:
                seen.append(backend)
    return seen


def _cell(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return float_text(v, "float64") if math.isfinite(v) else str(v)
    if isinstance(v, list | dict):
        return json.dumps(v, separators=(",", ":"))
    return str(v)


def rows(trials: Sequence[Trial], records: dict[str, dict]) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the table: each trial's swept values, verdict, largest difference in tolerance
    units, first diverging step, every backend's metrics, error, and the command that reproduces it."""
    keys = swept_keys(trials)
    names = backends([records[t.id] for t in trials])
    header = ["trial", *keys, "verdict", "tolerance_ratio", "first_divergence"]
    header += [f"{b}.{m}" for b in names for m in METRICS] + ["error", "command"]
    out = []
    for trial in trials:
        record = records[trial.id]
        divergence = (record.get("compare") or {}).get("first_divergence") or {}
        metrics = record.get("metrics") or {}
        out.append(
            [
                trial.id,
                *(_cell(value(record, k)) for k in keys),
                verdict(record),
                _cell(record.get("tolerance_ratio")),
                _cell(divergence.get("label") or divergence.get("step")),
                *(_cell(metrics.get(b, {}).get(m)) for b in names for m in METRICS),
                record.get("error") or "",
                trial.command,
            ]
        )
    return header, out


def columns(trials: Sequence[Trial], records: dict[str, dict]) -> dict[str, list[str]]:
    """The table by column (MLflow's log_table takes it so)."""
    header, body = rows(trials, records)
    return {name: [row[i] for row in body] for i, name in enumerate(header)}


def tracked(trial: Trial, record: dict, keys: Sequence[str]) -> dict:
    """What a trial's MLflow child run holds: the swept values as params (what the UI's parallel
    coordinates plot), the numbers as metrics, and the verdict, error and command as tags."""
    metrics = {f"{b}.{m}": v for b, values in (record.get("metrics") or {}).items() for m, v in values.items()}
    if record.get("tolerance_ratio") is not None:
        metrics["tolerance_ratio"] = record["tolerance_ratio"]
    metrics = {k: v for k, v in metrics.items() if isinstance(v, int | float) and math.isfinite(v)}
    metrics["agree"] = 1.0 if verdict(record) == AGREE else 0.0
    tags = {"verdict": verdict(record), "command": trial.command}
    if record.get("error"):
        tags["error"] = record["error"][:5000]
    return {"id": trial.id, "params": {k: _cell(value(record, k)) for k in keys}, "metrics": metrics, "tags": tags}


def table_text(trials: Sequence[Trial], records: dict[str, dict]) -> str:
    header, body = rows(trials, records)
    return csv_text(header, body)


def summary(trials: Sequence[Trial], records: dict[str, dict]) -> dict:
    """Counts by verdict and the share of runnable trials that agree."""
    verdicts = [verdict(records[t.id]) for t in trials]
    counts = {v: verdicts.count(v) for v in (AGREE, DIFFER, ERROR)}
    ran = counts[AGREE] + counts[DIFFER]
    return {"trials": len(trials), **counts, "agree_share": counts[AGREE] / ran if ran else None}


def summary_text(trials: Sequence[Trial], records: dict[str, dict]) -> str:
    return json_text(summary(trials, records))

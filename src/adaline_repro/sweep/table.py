"""The sweep's results as a pandas DataFrame: one row per trial in the grid's order, whatever order they
finished in and wherever they ran, with its swept values, verdict, largest difference in tolerance units,
first diverging step, every backend's metrics, error and the command that reproduces it. The table
(trials.csv), the summary and the agreement map are read off this frame, and written as deterministic text
(the same trials give the same bytes on 1 worker, 2 or a cluster).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from adaline_repro.core.files import float_text, json_text
from adaline_repro.sweep.grid import Trial
from adaline_repro.sweep.trial import TrialRecord

AGREE, DIFFER, ERROR = "agree", "differ", "error"
METRICS = ("train_accuracy", "test_accuracy", "train_mse")


def swept_keys(trials: Sequence[Trial]) -> list[str]:
    """The params keys the grid varies, in the order the `-S` values name them."""
    return list(dict.fromkeys(o.lstrip("+~").split("=", 1)[0].strip() for t in trials for o in t.overrides))


def verdict(record: TrialRecord) -> str:
    if record.error:
        return ERROR
    return AGREE if record.report.passed else DIFFER


def value(params: Mapping | None, key: str) -> object:
    """The value of a dotted params key in a params.yaml mapping (None when absent)."""
    node: object = params
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def backends(records: Sequence[TrialRecord]) -> list[str]:
    """Every backend any trial trained, in first-seen order."""
    return list(dict.fromkeys(b for r in records for b in value(r.params, "train.backends") or ()))


def frame(trials: Sequence[Trial], records: Mapping[str, TrialRecord]) -> pd.DataFrame:
    """The results, a row per trial in the grid's order; values as the trials hold them (None when absent),
    plus `sentence`, where and why a trial's backends part (not a column of trials.csv)."""
    keys = swept_keys(trials)
    chosen = [records[t.id] for t in trials]
    names = backends(chosen)
    rows = []
    for trial, record in zip(trials, chosen, strict=True):
        found = record.report.divergence if record.report else None
        rows.append({
            "trial": trial.id,
            **{k: value(record.params, k) for k in keys},
            "verdict": verdict(record),
            "tolerance_ratio": record.tolerance_ratio,
            "first_divergence": found.label if found else None,
            **{f"{b}.{m}": record.metrics.get(b, {}).get(m) for b in names for m in METRICS},
            "error": record.error or "",
            "command": trial.command,
            "sentence": _sentence(record),
        })  # fmt: skip
    return pd.DataFrame(rows, dtype=object)


def _sentence(record: TrialRecord) -> str | None:
    from adaline_repro.comparison import sentence  # numpy: only once the trials are in

    return sentence(record.report.divergence) if record.report and not record.report.passed else None


def table_text(results: pd.DataFrame) -> str:
    """trials.csv: every column but the sentence, each value as text (a float in its shortest form)."""
    return results.drop(columns="sentence").map(_cell).to_csv(index=False, lineterminator="\n")


def _cell(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return float_text(v, "float64") if math.isfinite(v) else str(v)
    if isinstance(v, list | dict):
        return json.dumps(v, separators=(",", ":"))
    return str(v)


def summary(results: pd.DataFrame) -> dict:
    """Counts by verdict and the share of runnable trials that agree."""
    counts = results["verdict"].value_counts().reindex([AGREE, DIFFER, ERROR], fill_value=0)
    ran = int(counts[AGREE] + counts[DIFFER])
    return {"trials": len(results), **{v: int(n) for v, n in counts.items()},
            "agree_share": int(counts[AGREE]) / ran if ran else None}  # fmt: skip


def summary_text(results: pd.DataFrame) -> str:
    return json_text(summary(results))


def columns(results: pd.DataFrame) -> dict[str, list[str]]:
    """trials.csv by column, as MLflow's log_table takes it."""
    return results.drop(columns="sentence").map(_cell).to_dict(orient="list")


@dataclass(frozen=True)
class TrialRun:
    """A trial as its MLflow child run holds it."""

    id: str
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]


def trial_run(trial: Trial, record: TrialRecord, keys: Sequence[str]) -> TrialRun:
    """What a trial's MLflow child run holds: the swept values as params (what the UI's parallel
    coordinates plot), the numbers as metrics, and the verdict, error and command as tags."""
    metrics = {f"{b}.{m}": v for b, values in record.metrics.items() for m, v in values.items()}
    if record.tolerance_ratio is not None:
        metrics["tolerance_ratio"] = record.tolerance_ratio
    metrics = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and math.isfinite(v)}
    metrics["agree"] = 1.0 if verdict(record) == AGREE else 0.0
    tags = {"verdict": verdict(record), "command": trial.command}
    if record.error:
        tags["error"] = record.error[:5000]
    return TrialRun(trial.id, {k: _cell(value(record.params, k)) for k in keys}, metrics, tags)

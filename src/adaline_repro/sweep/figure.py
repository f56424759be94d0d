"""The agreement map: learning rate x minibatch size (or the grid's first two swept keys), each cell the
trials at that point over every other swept value (the seeds).

Left: the share of trials whose backends agree, with the mean test accuracy of those that ran written in
the cell. Right: the largest backend difference in units of the compare tolerance (log scale; above 1 the
backends differ), the worst trial of the cell. A cell whose trials all failed (training diverged) is
hatched and says so.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.colors
import matplotlib.pyplot as plt
import numpy as np

from adaline_repro.sweep.grid import Trial
from adaline_repro.sweep.table import AGREE, ERROR, swept_keys, value, verdict

PREFERRED = ("train.lr", "train.batch_size")


def axes_keys(trials: Sequence[Trial]) -> tuple[str, str | None]:
    """(rows key, columns key): learning rate and minibatch size when both are swept, else the first two
    swept keys (the second None when only one is)."""
    keys = swept_keys(trials)
    if all(k in keys for k in PREFERRED):
        return PREFERRED
    return keys[0], keys[1] if len(keys) > 1 else None


def _sorted_values(records: Sequence[dict], key: str | None) -> list:
    if key is None:
        return [None]
    values = {value(r, key) for r in records}
    return sorted(values, key=lambda v: (not isinstance(v, int | float), v if isinstance(v, int | float) else str(v)))


def cells(trials: Sequence[Trial], records: dict[str, dict]) -> tuple[str, str | None, list, list, dict]:
    """(rows key, columns key, row values, column values, {(row, col): [records]})."""
    rows_key, cols_key = axes_keys(trials)
    chosen = [records[t.id] for t in trials]
    grid: dict[tuple, list[dict]] = {}
    for record in chosen:
        where = (value(record, rows_key), value(record, cols_key) if cols_key else None)
        grid.setdefault(where, []).append(record)
    return rows_key, cols_key, _sorted_values(chosen, rows_key), _sorted_values(chosen, cols_key), grid


def agreement_map(trials: Sequence[Trial], records: dict[str, dict]) -> bytes:
    """PNG bytes of the map; the same records give the same bytes (no timestamps in the metadata)."""
    rows_key, cols_key, row_values, col_values, grid = cells(trials, records)
    share = np.full((len(row_values), len(col_values)), np.nan)
    worst = np.full_like(share, np.nan)
    notes = {}
    for (i, r), (j, c) in ((a, b) for a in enumerate(row_values) for b in enumerate(col_values)):
        group = grid.get((r, c), [])
        ran = [g for g in group if verdict(g) != ERROR]
        if not group:
            continue
        if not ran:
            notes[i, j] = f"{len(group)} failed"
            continue
        share[i, j] = sum(verdict(g) == AGREE for g in ran) / len(ran)
        ratios = [g["tolerance_ratio"] for g in ran if g.get("tolerance_ratio") is not None]
        worst[i, j] = max(ratios) if ratios else np.inf
        accuracies = [m["test_accuracy"] for g in ran for m in g["metrics"].values()]
        failed = len(group) - len(ran)
        notes[i, j] = f"{100 * share[i, j]:.0f}%\nacc {100 * np.mean(accuracies):.1f}" + (
            f"\n{failed} failed" if failed else ""
        )
    width = 3.2 + 0.9 * len(col_values)
    fig, (left, right) = plt.subplots(1, 2, figsize=(2 * width, 1.2 + 0.55 * len(row_values)), layout="constrained")
    image = left.imshow(share, cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
    fig.colorbar(image, ax=left, label="share of trials whose backends agree")
    finite = worst[np.isfinite(worst) & (worst > 0)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.1, 10.0)
    norm = matplotlib.colors.LogNorm(vmin=min(low, 0.1), vmax=max(high, 10.0))
    shown = np.where(np.isfinite(worst) & (worst > 0), worst, np.nan)
    image = right.imshow(shown, cmap="magma_r", norm=norm, aspect="auto")
    fig.colorbar(image, ax=right, label="largest difference / compare tolerance (worst trial)")
    for axis in (left, right):
        axis.set_yticks(range(len(row_values)), [str(v) for v in row_values])
        axis.set_xticks(range(len(col_values)), ["" if v is None else str(v) for v in col_values])
        axis.set_ylabel(rows_key)
        axis.set_xlabel(cols_key or "")
    for (i, j), text in notes.items():
        left.text(j, i, text, ha="center", va="center", fontsize=7)
        if not math.isnan(shown[i, j]):
            dark = norm(shown[i, j]) > 0.6
            right.text(j, i, f"{shown[i, j]:.2g}", ha="center", va="center", fontsize=7,
                       color="white" if dark else "black")  # fmt: skip
        elif math.isnan(share[i, j]):
            for axis in (left, right):
                axis.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///", lw=0))
    n = len(trials)
    left.set_title(f"Do the backends agree? {n} trials, cells over the other swept values", fontsize=9)
    right.set_title("How far apart, in tolerance units (>1: they differ)", fontsize=9)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()

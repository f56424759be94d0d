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
import pandas as pd

from adaline_repro.sweep.table import AGREE, ERROR

PREFERRED = ("train.lr", "train.batch_size")


def axes_keys(keys: Sequence[str]) -> tuple[str, str | None]:
    """(rows key, columns key): learning rate and minibatch size when both are swept, else the first two
    swept keys (the second None when only one is)."""
    if all(k in keys for k in PREFERRED):
        return PREFERRED
    return keys[0], keys[1] if len(keys) > 1 else None


def _order(values: Sequence) -> list:
    """Numbers in order, then anything else by its text."""
    return sorted(values, key=lambda v: (not isinstance(v, int | float), v if isinstance(v, int | float) else str(v)))


def cells(results: pd.DataFrame, keys: Sequence[str]) -> tuple[str, str | None, pd.DataFrame]:
    """(rows key, columns key, one row per cell): its trials, how many of them ran, the share of those that
    agree, the worst tolerance ratio (inf when none is known) and the mean test accuracy of every backend."""
    rows_key, cols_key = axes_keys(keys)
    accuracy = [c for c in results.columns if c.endswith(".test_accuracy")]
    data = results.assign(
        column=results[cols_key] if cols_key else None,
        ran=results["verdict"] != ERROR,
        agree=results["verdict"] == AGREE,
        ratio=results["tolerance_ratio"].astype(float),
        accuracy=results[accuracy].astype(float).mean(axis=1) if accuracy else np.nan,
    )
    by_cell = [rows_key, "column"]
    ran = data[data["ran"]].groupby(by_cell, dropna=False, sort=False)
    found = pd.DataFrame({
        "share": ran["agree"].mean(),
        "worst": ran["ratio"].max().fillna(np.inf),
        "accuracy": ran["accuracy"].mean(),
        "ran": ran.size(),
    })  # fmt: skip
    trials = data.groupby(by_cell, dropna=False, sort=False).size().rename("trials")
    return rows_key, cols_key, found.join(trials, how="right").fillna({"ran": 0})


def agreement_map(results: pd.DataFrame, keys: Sequence[str]) -> bytes:
    """PNG bytes of the map; the same results give the same bytes (no timestamps in the metadata)."""
    rows_key, cols_key, found = cells(results, keys)
    row_values = _order(list(found.index.get_level_values(0).unique()))
    col_values = _order(list(found.index.get_level_values(1).unique())) if cols_key else [None]
    share = np.full((len(row_values), len(col_values)), np.nan)
    worst = np.full_like(share, np.nan)
    notes = {}
    for (r, c), cell in found.iterrows():
        i, j = row_values.index(r), col_values.index(c if cols_key else None)
        failed = int(cell["trials"] - cell["ran"])
        if not cell["ran"]:
            notes[i, j] = f"{failed} failed"
            continue
        share[i, j], worst[i, j] = cell["share"], cell["worst"]
        notes[i, j] = f"{100 * share[i, j]:.0f}%\nacc {100 * cell['accuracy']:.1f}" + (
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
    n = len(results)
    left.set_title(f"Do the backends agree? {n} trials, cells over the other swept values", fontsize=9)
    right.set_title("How far apart, in tolerance units (>1: they differ)", fontsize=9)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()

"""The loss-curve figure: the backends' curves overlaid, and their pairwise differences on a log scale."""

from __future__ import annotations

import io
import itertools
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # no display; also keeps rendering deterministic

import matplotlib.pyplot as plt
import numpy as np

from adaline_repro.core.files import atomic_write_bytes
from adaline_repro.core.results import curve_file, read_curve

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from adaline_repro.comparison.divergence import Divergence

# Differences of exactly zero cannot sit on a log axis: they are drawn on this floor, as hollow markers.
FLOOR = 1e-12
# Line and marker styles in backend order, so curves lying on top of each other stay distinguishable.
_STYLES = (("-", "o"), ("--", "s"), (":", "^"), ("-.", "D"), ((0, (1, 3)), "v"))


def loss_figure(curves: dict[str, np.ndarray], divergence: Divergence | None = None) -> bytes:
    """PNG bytes; the same curves always give the same bytes (no timestamps or version in the metadata).

    No tolerance line: the figure depends on the curves alone, so changing a tolerance re-runs compare only
    (reports/compare.md states the tolerances next to the differences). `divergence` (when the backends
    differ) adds a marker at the first diverging update step. Curves of other lengths (a backend that trained
    fewer epochs) are drawn as long as they are, their differences over the epochs they share; values that are
    not finite are left out of the lines and of the axes' limits.
    """
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 7.5), sharex=True, height_ratios=(3, 2), layout="constrained")
    _draw_curves(top, curves)
    _draw_differences(bottom, curves)
    if divergence is not None:
        _mark(top, bottom, divergence)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def _epochs(n: int) -> np.ndarray:
    return np.arange(1, n + 1)


def _finite(values: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(values), values, np.nan)


def _draw_curves(top: Axes, curves: dict[str, np.ndarray]) -> None:
    for i, (name, curve) in enumerate(curves.items()):
        line, marker = _STYLES[i % len(_STYLES)]
        epochs = _epochs(len(curve))
        top.plot(
            epochs,
            _finite(curve),
            linestyle=line,
            marker=marker,
            markevery=max(1, len(epochs) // 20),
            fillstyle="none",
            label=name,
        )
    top.set_ylabel("training MSE")
    top.set_title("ADALINE training loss per backend (curves lie on top of each other when they agree)")
    top.legend(title="backend")
    top.grid(alpha=0.3)


def _draw_differences(bottom: Axes, curves: dict[str, np.ndarray]) -> None:
    largest = 0.0
    for a, b in itertools.combinations(curves, 2):
        shared = min(len(curves[a]), len(curves[b]))
        epochs = _epochs(shared)
        with np.errstate(invalid="ignore", over="ignore"):
            diff = _finite(np.abs(curves[a][:shared] - curves[b][:shared]))
        if np.isfinite(diff).any():
            largest = max(largest, float(np.nanmax(diff)))
        (drawn,) = bottom.semilogy(epochs, np.where(diff > 0, diff, np.nan), marker=".", label=f"|{a} - {b}|")
        zero = diff == 0
        bottom.semilogy(
            epochs[zero],
            np.full(zero.sum(), FLOOR),
            linestyle="none",
            marker="o",
            fillstyle="none",
            color=drawn.get_color(),
        )
    bottom.set_ylim(FLOOR / 3, max(1.0, largest * 3))
    bottom.set_xlabel("epoch")
    bottom.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    bottom.set_ylabel("absolute difference")
    bottom.set_title(f"pairwise differences: largest {largest:.2g}; hollow circles at {FLOOR:g} mean exactly equal")
    bottom.legend(fontsize="small", loc="upper right")
    bottom.grid(alpha=0.3, which="both")


def _mark(top: Axes, bottom: Axes, divergence: Divergence) -> None:
    """A line at the first diverging update. Epoch e's point is the MSE after its last update, so update b
    of B in epoch e sits at e - 1 + b / B; the initial parameters (step 0) at 0."""
    at = 0.0
    if divergence.step:
        at = divergence.epoch - 1 + divergence.batch / divergence.batches_per_epoch
    for axes in (top, bottom):
        axes.axvline(at, color="crimson", linestyle="--", linewidth=1.2)
    top.annotate(
        f"first divergence: {divergence.label}",
        xy=(at, 1.0),
        xycoords=("data", "axes fraction"),
        xytext=(4, -14),
        textcoords="offset points",
        color="crimson",
        fontsize="small",
    )


def draw(backends: tuple[str, ...], curves: Path, out: Path, divergence: Divergence | None = None) -> None:
    """The figure file (reports/loss_curves.png) from the backends' loss curves in the `curves` folder."""
    atomic_write_bytes(out, loss_figure({b: read_curve(curve_file(curves, b)) for b in backends}, divergence))

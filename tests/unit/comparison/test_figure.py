"""The loss-curve figure: a deterministic PNG, so DVC's hash of it is reproducible."""

from __future__ import annotations

import dataclasses

import numpy as np

from adaline_repro.comparison import Divergence
from adaline_repro.comparison.figure import loss_figure


def _curves() -> dict[str, np.ndarray]:
    base = 0.4 * np.exp(-np.arange(20) / 5) + 0.1
    return {"manual": base, "autograd": base + 3e-8 * (np.arange(20) % 2), "module": base.copy()}


def test_same_curves_give_the_same_bytes():
    first, second = loss_figure(_curves()), loss_figure(_curves())
    assert first == second
    assert first.startswith(b"\x89PNG\r\n\x1a\n")
    assert b"Software" not in first  # no matplotlib version stamped into the file


def test_a_visible_difference_changes_the_figure():
    """Off by 1e-4 at one epoch must not look like rounding noise: the bytes differ."""
    curves = _curves()
    shifted = {**curves, "module": curves["module"] + np.where(np.arange(20) == 7, 1e-4, 0.0)}
    assert loss_figure(shifted) != loss_figure(curves)


def _divergence(step: int, epoch: int, batch: int) -> Divergence:
    label = f"step {step} (epoch {epoch}, batch {batch})"
    return Divergence(step, epoch, batch, 7, label, ("weight[a]", "bias"), (), {}, {}, ())


def test_the_first_divergence_is_marked_at_its_step():
    """compare's first diverging step adds a marker: deterministic bytes, and another step draws it elsewhere."""
    curves = _curves()
    marked = loss_figure(curves, _divergence(9, 2, 2))
    assert marked == loss_figure(curves, _divergence(9, 2, 2))
    assert marked != loss_figure(curves)
    same_label_elsewhere = dataclasses.replace(_divergence(9, 2, 2), batch=5)
    assert loss_figure(curves, same_label_elsewhere) != marked
    assert loss_figure(curves, _divergence(0, 0, 0)).startswith(b"\x89PNG")


def test_a_backend_that_trained_fewer_epochs_or_overflowed_is_still_drawn():
    """One epoch fewer crashed compare (exit 70, matplotlib's `x and y must have same first dimension`)."""
    curves = _curves()
    shorter = {**curves, "module": curves["module"][:-1]}
    drawn = loss_figure(shorter, _divergence(133, 19, 7))
    assert drawn.startswith(b"\x89PNG")
    assert drawn != loss_figure(curves, _divergence(133, 19, 7))
    overflowed = {**curves, "autograd": np.where(np.arange(20) >= 5, np.inf, curves["autograd"])}
    assert loss_figure(overflowed).startswith(b"\x89PNG")
    assert loss_figure({"manual": np.full(3, np.nan), "module": np.array([])}).startswith(b"\x89PNG")

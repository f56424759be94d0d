"""The compare tolerance, one rule for every float quantity and every step: |a - b| <= atol + rtol * max(|a|, |b|);
for an update held to the lecture's replayed one, the same atol and rtol, rtol taken of the update's terms."""

from __future__ import annotations

import numpy as np

from adaline_repro.core.params import CompareParams


def bound(a: np.ndarray, b: np.ndarray, tol: CompareParams) -> np.ndarray:
    """How far apart a and b may be, elementwise: atol + rtol * max(|a|, |b|)."""
    return tol.atol + tol.rtol * np.maximum(np.abs(a), np.abs(b))


def close(a: np.ndarray, b: np.ndarray, tol: CompareParams) -> np.ndarray:
    """Elementwise, for finite values; an infinity is close only to itself, and NaN to nothing, NaN included."""
    with np.errstate(invalid="ignore", over="ignore"):
        within = np.isfinite(a) & np.isfinite(b) & (np.abs(a - b) <= bound(a, b, tol))
        return within | (np.isinf(a) & (a == b))


def update_bound(before: np.ndarray, expected: np.ndarray, after: np.ndarray, tol: CompareParams) -> np.ndarray:
    """How far an update from `before` may land from `expected`: atol + rtol times the largest number the update
    adds (before, the step, after). Float rounding of a sum is relative to its terms, and a step that nearly
    cancels the parameter leaves a small result with the rounding of its large terms (in float32, lr 0.6 at a
    minibatch of 10 does)."""
    with np.errstate(invalid="ignore", over="ignore"):
        return tol.atol + tol.rtol * np.maximum(np.maximum(np.abs(before), np.abs(expected - before)), np.abs(after))


def update_ratio(before: np.ndarray, expected: np.ndarray, after: np.ndarray, tol: CompareParams) -> np.ndarray:
    """How far an update from `before` landed from `expected`, elementwise, in units of update_bound: 0 where
    they are equal (an infinity included), inf where one is not finite and they differ."""
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        ratio = np.abs(expected - after) / update_bound(before, expected, after, tol)
        finite = np.isfinite(expected) & np.isfinite(after)
        return np.where(expected == after, 0.0, np.where(finite, np.nan_to_num(ratio, nan=np.inf), np.inf))


def close_update(before: np.ndarray, expected: np.ndarray, after: np.ndarray, tol: CompareParams) -> np.ndarray:
    """Whether an update from `before` gave `after` where `expected` was due, elementwise, within update_bound."""
    return update_ratio(before, expected, after, tol) <= 1

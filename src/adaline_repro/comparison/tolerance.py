"""The compare tolerance, one rule for every float quantity and every step: |a - b| <= atol + rtol * max(|a|, |b|)."""

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

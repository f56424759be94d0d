"""The compare tolerance, one rule for every float quantity and every step: |a - b| <= atol + rtol * max(|a|, |b|)."""

from __future__ import annotations

import numpy as np

from adaline_repro.params import CompareParams


def close(a: np.ndarray, b: np.ndarray, tol: CompareParams) -> np.ndarray:
    """Elementwise, for finite values; an infinity is close only to itself, and NaN to nothing, NaN included."""
    scale = np.maximum(np.abs(a), np.abs(b))
    with np.errstate(invalid="ignore", over="ignore"):
        within = np.isfinite(a) & np.isfinite(b) & (np.abs(a - b) <= tol.atol + tol.rtol * scale)
        return within | (np.isinf(a) & (a == b))

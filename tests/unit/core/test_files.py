"""Deterministic float text: the vectorized writer of large records gives float_text's exact strings."""

from __future__ import annotations

import numpy as np
import pytest

from adaline_repro.core.files import float_text, float_texts


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_float_texts_is_float_text_for_every_value(dtype):
    """Random values over many magnitudes, signs, zeros, subnormals and the extremes of the dtype."""
    info = np.finfo(dtype)
    rng = np.random.default_rng(7)
    values = np.concatenate(
        [
            rng.standard_normal(3000) * 10.0 ** rng.integers(-30, 30, 3000),
            [0.0, -0.0, 1e-5, 1e16, 0.1, 0.5, 1 / 3, float(info.tiny), float(info.max), float(info.smallest_subnormal)],
        ]
    ).astype(dtype)
    table = values.reshape(-1, 2)
    assert float_texts(table, dtype) == [[float_text(v, dtype) for v in row] for row in table.tolist()]

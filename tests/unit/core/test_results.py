"""Results: a model predicts 1 only where the net input exceeds the threshold; unreadable files are DataError."""

from __future__ import annotations

import numpy as np
import pytest

from adaline_repro.core.files import DataError
from adaline_repro.core.results import Model, read_curve, read_model


def _model(bias: float) -> Model:
    return Model("manual", "cpu", "float32", ("a", "b"), np.array([1.0, 0.0], np.float32), np.float32(bias))


def test_a_score_exactly_on_the_threshold_is_class_0():
    """`exceeds` means strictly greater: 0.5 against a threshold of 0.5 is class 0, the next float up class 1."""
    x = np.array([[0.5, 9.0], [np.nextafter(np.float32(0.5), np.float32(1)), 9.0], [0.25, 9.0]], np.float32)
    assert _model(0.0).predict(x, threshold=0.5).tolist() == [0, 1, 0]


def test_the_bias_shifts_the_score():
    x = np.array([[0.3, 0.0]], np.float32)
    assert _model(0.25).predict(x, 0.5).tolist() == [1]
    assert _model(0.0).predict(x, 0.5).tolist() == [0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("epoch,loss\n1,0.5\n", "expected header epoch,train_mse"),
        ("epoch,train_mse\n2,0.5\n", "epochs must run 1..1"),
        ("epoch,train_mse\n1,half\n", "not a loss curve"),
        ("", "empty file"),
    ],
)
def test_a_malformed_curve_is_a_data_error_naming_the_file(tmp_path, text, message):
    path = tmp_path / "manual.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message) as raised:
        read_curve(path)
    assert str(raised.value).startswith(f"{path}: ")


def test_a_model_file_without_weights_is_a_data_error(tmp_path):
    path = tmp_path / "manual.json"
    path.write_text('{"backend": "manual", "device": "cpu", "dtype": "float32", "features": ["a"]}\n')
    with pytest.raises(DataError, match="not a model file"):
        read_model(path)

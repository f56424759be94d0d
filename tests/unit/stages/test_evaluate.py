"""Evaluate: threshold-0.5 predictions give the lecture's accuracies."""

from __future__ import annotations

import numpy as np
import pytest

from adaline_repro.core.files import read_csv, read_json
from adaline_repro.stages import evaluate, train
from tests.conftest import PATHS


def test_lecture_accuracies(tmp_path, data_dir, train_table, params):
    """Every backend: 92.86 % train and 93.33 % test accuracy, written as fractions with the final train_mse."""
    dirs = PATHS.results(tmp_path)
    for backend in params.train.backends:
        train.write_outputs(
            backend, data_dir / "train.csv", dirs.model(backend), dirs.curve(backend), dirs.step(backend), params.train
        )
    results = evaluate.write_outputs(
        dirs, params.train.backends, data_dir / "train.csv", data_dir / "test.csv", params.evaluate
    )
    assert tuple(results) == params.train.backends
    for backend, metrics in results.items():
        assert metrics == read_json(dirs.metric(backend))
        assert metrics["train_accuracy"] == 65 / 70
        assert metrics["test_accuracy"] == 28 / 30
        assert round(metrics["train_accuracy"], 4) == 0.9286
        assert round(metrics["test_accuracy"], 4) == 0.9333
        assert metrics["train_mse"] == pytest.approx(0.10025, abs=5e-6)
        header, rows = read_csv(dirs.prediction(backend))
        assert header == ["split", "row", "label", "prediction"]
        assert len(rows) == 100
        wrong = [r for r in rows if r[2] != r[3]]
        assert len(wrong) == 5 + 2


def test_accuracy_counts_matches():
    assert evaluate.accuracy(np.array([1, 0, 1, 1]), np.array([1, 1, 1, 0])) == 0.5


def test_the_stage_says_one_line_naming_a_backend_only_when_its_accuracies_differ():
    same = {"train_accuracy": 65 / 70, "test_accuracy": 28 / 30}
    assert evaluate.line({"manual": same, "module": same}) == (
        "evaluate: train accuracy 0.9286, test accuracy 0.9333 (manual, module)"
    )
    assert evaluate.line({"manual": same, "module": {**same, "test_accuracy": 27 / 30}}) == (
        "evaluate: manual: train accuracy 0.9286, test accuracy 0.9333; "
        "module: train accuracy 0.9286, test accuracy 0.9000"
    )

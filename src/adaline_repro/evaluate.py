"""Evaluate stage: predictions at the threshold, accuracies, and the final training MSE."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from adaline_repro.dataset import Table, read_table
from adaline_repro.files import write_csv, write_json
from adaline_repro.model import Model, read_curve, read_model
from adaline_repro.params import EvaluateParams

PREDICTIONS_HEADER = ("split", "row", "label", "prediction")


def accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(predictions == labels))


def evaluate(model: Model, train: Table, test: Table, curve: np.ndarray, params: EvaluateParams) -> tuple[dict, list]:
    """(metrics, prediction rows) for one backend."""
    if model.features != train.features:
        raise ValueError(f"model {model.backend} was trained on {model.features}, data has {train.features}")
    rows, metrics = [], {}
    for split, table in (("train", train), ("test", test)):
        predicted = model.predict(table.x, params.threshold)
        metrics[f"{split}_accuracy"] = accuracy(predicted, table.y)
        rows += [(split, int(r), int(t), int(p)) for r, t, p in zip(table.rows, table.y, predicted, strict=True)]
    metrics["train_mse"] = float(curve[-1])
    return metrics, rows


def run(
    model_json: Path,
    curve_csv: Path,
    train_csv: Path,
    test_csv: Path,
    metrics_json: Path,
    predictions_csv: Path,
    params: EvaluateParams,
) -> dict:
    model = read_model(model_json)
    metrics, rows = evaluate(model, read_table(train_csv), read_table(test_csv), read_curve(curve_csv), params)
    write_csv(predictions_csv, PREDICTIONS_HEADER, rows)
    write_json(metrics_json, metrics)
    return metrics

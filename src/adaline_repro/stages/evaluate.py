"""Evaluate stage: each backend's predictions at the threshold, accuracies, and final training MSE."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from adaline_repro.core.errors import EXIT_OK
from adaline_repro.core.files import DataError, write_csv, write_json
from adaline_repro.core.params import EvaluateParams, load_params
from adaline_repro.core.results import Model, ResultDirs, Table, read_curve, read_model, read_table
from adaline_repro.stages import RESULTS, parser, run_stage, say

PREDICTIONS_HEADER = ("split", "row", "label", "prediction")


def accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(predictions == labels))


def evaluate(model: Model, train: Table, test: Table, curve: np.ndarray, params: EvaluateParams) -> tuple[dict, list]:
    """(metrics, prediction rows) for one backend."""
    if model.features != train.features:
        raise DataError(f"model {model.backend} was trained on {model.features}, data has {train.features}")
    rows, metrics = [], {}
    for split, table in (("train", train), ("test", test)):
        predicted = model.predict(table.x, params.threshold)
        metrics[f"{split}_accuracy"] = accuracy(predicted, table.y)
        rows += [(split, int(r), int(t), int(p)) for r, t, p in zip(table.rows, table.y, predicted, strict=True)]
    metrics["train_mse"] = float(curve[-1])
    return metrics, rows


def write_outputs(
    dirs: ResultDirs, backends: tuple[str, ...], train_csv: Path, test_csv: Path, params: EvaluateParams
) -> dict:
    """Evaluate every backend's model; write its predictions and metrics. Returns backend -> metrics."""
    train, test = read_table(train_csv), read_table(test_csv)
    results = {}
    for backend in backends:
        model = read_model(dirs.model(backend))
        metrics, rows = evaluate(model, train, test, read_curve(dirs.curve(backend)), params)
        write_csv(dirs.prediction(backend), PREDICTIONS_HEADER, rows)
        write_json(dirs.metric(backend), metrics)
        results[backend] = metrics
    return results


def stage(params_yaml: Path, dirs: ResultDirs, train: Path, test: Path, say: Callable[[str], None]) -> int:
    """The evaluate stage: predictions and accuracies of every backend in train.backends."""
    params = load_params(params_yaml)
    say(line(write_outputs(dirs, params.train.backends, train, test, params.evaluate)))
    return EXIT_OK


def line(results: dict[str, dict]) -> str:
    """The stage's one line: the accuracies, once when every backend has the same, else each backend's."""
    texts = {b: f"train accuracy {m['train_accuracy']:.4f}, test accuracy {m['test_accuracy']:.4f}"
             for b, m in results.items()}  # fmt: skip
    if len(set(texts.values())) == 1:
        return f"evaluate: {next(iter(texts.values()))} ({', '.join(texts)})"
    return "evaluate: " + "; ".join(f"{b}: {t}" for b, t in texts.items())


def main(argv: Sequence[str] | None = None) -> int:
    args = parser("evaluate", "Predictions and accuracies of every backend.", *RESULTS, "train", "test").parse_args(
        argv
    )
    dirs = ResultDirs(args.models, args.curves, args.predictions, args.metrics)
    return stage(args.params, dirs, args.train, args.test, say)


if __name__ == "__main__":
    sys.exit(run_stage(main))

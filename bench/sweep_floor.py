"""The sweep's floor: the same trials in one plain Python loop, with no Ray, no MLflow and no files.

Each trial selects, splits and standardizes the raw table, trains every backend on the seeded shuffles,
predicts at the threshold and compares the backends, all in memory, with the project's functions (the
same arithmetic as the stages, minus writing and reading their files). Params are built before the clock
starts: the loop is what a hand-written script would time.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from adaline_repro.comparison import BackendOutputs, Lecture, compare
from adaline_repro.core.params import Params
from adaline_repro.core.results import Model, Steps, Table, parameter_names
from adaline_repro.dvc_support.overrides import Overrides
from adaline_repro.stages import evaluate, fetch, prepare, train
from adaline_repro.sweep.grid import default_overrides, trial_params, trials


def _table(split: prepare.Split, features: tuple[str, ...]) -> Table:
    return Table(features, split.x.numpy(), split.y.numpy(), split.rows.numpy())


def one(params: Params, raw: pd.DataFrame) -> bool | None:
    """True when the backends agree, False when they differ, None when training fails."""
    prepared = prepare.split_and_standardize(prepare.select(raw, params.prepare), params.prepare)
    features = params.prepare.features
    train_table, test_table = _table(prepared.train, features), _table(prepared.test, features)
    orders = train.shuffle_orders(len(train_table.y), params.train.epochs, params.train.seed)
    outputs = []
    for backend in params.train.backends:
        try:
            result = train.train(backend, train_table, params.train, orders)
        except train.TrainError:
            return None
        dtype = params.train.dtype
        model = Model(
            backend, result.device, dtype, features, np.asarray(result.weight, dtype), np.asarray(result.bias, dtype)
        )
        curve = np.asarray(result.losses, dtype=np.float64)
        metrics, predicted = evaluate.evaluate(model, train_table, test_table, curve, params.evaluate)
        k = len(result.minibatches)
        steps = Steps(
            names=parameter_names(features),
            epoch=np.array([0] + [m[0] for m in result.minibatches], dtype=np.int64),
            batch=np.array([0] + [m[1] for m in result.minibatches], dtype=np.int64),
            rows=((), *(m[2] for m in result.minibatches)),
            params=np.asarray(result.step_params, dtype=np.float64).reshape(k + 1, -1),
            batch_mse=np.array([np.nan, *result.batch_losses], dtype=np.float64),
        )
        outputs.append(
            BackendOutputs(
                backend=backend,
                device=result.device,
                curve=curve,
                weights=np.append(model.weight, model.bias).astype(np.float64),
                weight_names=parameter_names(features),
                predictions=tuple((split, row, pred) for split, row, _, pred in predicted),
                metrics=metrics,
                steps=steps,
            )
        )
    return compare(outputs, params.compare, Lecture(train_table, params.train.lr)).passed


def floor(root: Path) -> dict:
    """Time the default sweep's trials in this process (after one warm-up trial, as a worker would be)."""
    applied = Overrides((root / "params.yaml").read_text(encoding="utf-8"))
    chosen = trials(applied, default_overrides(root))
    all_params = [trial_params(applied, t.overrides) for t in chosen]
    with tempfile.TemporaryDirectory() as tmp:  # the raw table, read once as the prepare stage reads it
        (Path(tmp) / "raw.csv").write_text(fetch.fetch(all_params[0].fetch), encoding="utf-8")
        raw = prepare.read_raw(Path(tmp) / "raw.csv")
    one(all_params[0], raw)
    started = time.perf_counter()
    verdicts = [one(p, raw) for p in all_params]
    wall = time.perf_counter() - started
    return {
        "trials": len(chosen),
        "wall_s": wall,
        "per_trial_ms": 1000 * wall / len(chosen),
        "agree": verdicts.count(True),
        "differ": verdicts.count(False),
        "failed": verdicts.count(None),
    }

"""The pipeline's files, read back with numpy: the prepared tables (train.csv, test.csv), and each backend's
results: where they live (one file per backend, named after it, in folders that dvc.yaml names), its trained
model, its loss curve and its per-update record. numpy only, so evaluate and compare skip torch."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adaline_repro.core.files import DataError, float_texts, read_csv, read_json, write_csv

LABEL = "label"
ROW = "row"


@dataclass(frozen=True)
class Table:
    features: tuple[str, ...]
    x: np.ndarray  # (n, n_features) float32, standardized
    y: np.ndarray  # (n,) int64 class labels 0/1
    rows: np.ndarray  # (n,) int64 row of the raw table


def read_table(path: Path | str) -> Table:
    header, rows = read_csv(path)
    n_features = header.index(LABEL)
    data = np.array(rows, dtype=object)
    return Table(
        features=tuple(header[:n_features]),
        x=data[:, :n_features].astype(np.float32).reshape(len(rows), n_features),
        y=data[:, n_features].astype(np.int64),
        rows=data[:, header.index(ROW)].astype(np.int64),
    )


def curve_file(curves: Path, backend: str) -> Path:
    """One backend's loss curve in the curves folder (the figure reads this folder alone)."""
    return curves / f"{backend}.csv"


@dataclass(frozen=True)
class ResultDirs:
    """The folders of train's and evaluate's outputs; stage commands get them as arguments from dvc.yaml.
    `steps` is None for the evaluate stage, which does not read the per-update records."""

    models: Path
    curves: Path
    predictions: Path
    metrics: Path
    steps: Path | None = None

    def model(self, backend: str) -> Path:
        return self.models / f"{backend}.json"

    def curve(self, backend: str) -> Path:
        return curve_file(self.curves, backend)

    def prediction(self, backend: str) -> Path:
        return self.predictions / f"{backend}.csv"

    def metric(self, backend: str) -> Path:
        return self.metrics / f"{backend}.json"

    def step(self, backend: str) -> Path:
        if self.steps is None:
            raise TypeError("these result folders were given without the steps folder")
        return self.steps / f"{backend}.csv"

    def files(self, backend: str) -> tuple[Path, ...]:
        """Every result file of one backend."""
        return tuple(path(backend) for path in (self.model, self.curve, self.prediction, self.metric, self.step))


@dataclass(frozen=True)
class CompareFiles:
    """What the compare stage writes: the report (JSON and Markdown), the verdict DVC shows as metrics, and
    the two plots' data (every backend's loss curve in one table, and the per-step differences)."""

    json: Path
    md: Path
    verdict: Path
    loss_plot: Path
    diff_plot: Path


@dataclass(frozen=True)
class ExecutionInputs:
    """The files an execution logs besides the backends' results (compare logs them when it fails, track
    always)."""

    raw: Path
    train: Path
    test: Path
    figure: Path


@dataclass(frozen=True)
class Model:
    backend: str
    device: str
    dtype: str
    features: tuple[str, ...]
    weight: np.ndarray  # (n_features,)
    bias: np.ndarray  # () in the model's dtype

    def predict(self, x: np.ndarray, threshold: float) -> np.ndarray:
        """Class labels: 1 where the net input exceeds the threshold. (n, f) -> (n,) int64."""
        scores = x.astype(self.dtype) @ self.weight + self.bias
        return (scores > threshold).astype(np.int64)


def read_model(path: Path | str) -> Model:
    data = read_json(path)
    try:
        dtype = data["dtype"]
        return Model(
            backend=data["backend"],
            device=data["device"],
            dtype=dtype,
            features=tuple(data["features"]),
            weight=np.asarray(data["weight"], dtype=dtype),
            bias=np.asarray(data["bias"], dtype=dtype),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{path}: not a model file ({type(exc).__name__}: {exc})") from None


def read_curve(path: Path | str) -> np.ndarray:
    """Train MSE per epoch, epochs 1..N, as float64 holding the logged values exactly."""
    header, rows = read_csv(path)
    if header != ["epoch", "train_mse"]:
        raise DataError(f"{path}: expected header epoch,train_mse, found {','.join(header)}")
    try:
        epochs = [int(r[0]) for r in rows]
        losses = [float(r[1]) for r in rows]
    except (IndexError, ValueError) as exc:
        raise DataError(f"{path}: not a loss curve ({exc})") from None
    if epochs != list(range(1, len(rows) + 1)):
        raise DataError(f"{path}: epochs must run 1..{len(rows)}")
    return np.array(losses, dtype=np.float64)


def parameter_names(features: tuple[str, ...]) -> tuple[str, ...]:
    """The parameters in the order every result lists them: `weight[<feature>]`..., `bias`."""
    return (*(f"weight[{f}]" for f in features), "bias")


# steps/<backend>.csv: these columns, then one per parameter (weight[<feature>]..., bias), then BATCH_MSE.
STEP_COLUMNS = ("step", "epoch", "batch", "rows")
BATCH_MSE = "batch_mse"


@dataclass(frozen=True)
class Steps:
    """One backend's record of every minibatch update. Index 0 holds the parameters before the first update
    (epoch 0, batch 0, no rows, no loss); index k those after update k, its epoch, its batch within the
    epoch (from 1), the raw-table rows of its minibatch, and the minibatch MSE it descended (at the
    parameters before the update)."""

    names: tuple[str, ...]  # weight[<feature>]..., bias
    epoch: np.ndarray  # (k + 1,) int64
    batch: np.ndarray  # (k + 1,) int64
    rows: tuple[tuple[int, ...], ...]  # (k + 1,) minibatches; () at index 0
    params: np.ndarray  # (k + 1, len(names)) float64 holding the written values exactly
    batch_mse: np.ndarray  # (k + 1,) float64; NaN at index 0

    @property
    def updates(self) -> int:
        return len(self.rows) - 1

    @property
    def batches_per_epoch(self) -> int:
        return int(np.count_nonzero(self.epoch == 1))

    def label(self, step: int) -> str:
        """`step 9 (epoch 2, batch 2)`, or `step 0 (before the first update)`."""
        if step == 0:
            return "step 0 (before the first update)"
        return f"step {step} (epoch {self.epoch[step]}, batch {self.batch[step]})"


def steps_header(names: tuple[str, ...]) -> tuple[str, ...]:
    return (*STEP_COLUMNS, *names, BATCH_MSE)


def write_steps(
    path: Path | str,
    names: tuple[str, ...],
    minibatches: Sequence[tuple[int, int, tuple[int, ...]]],
    params: Sequence[Sequence[float]],
    batch_mse: Sequence[float],
    dtype: str,
) -> None:
    """Write a Steps record: (epoch, batch, rows) and the minibatch MSE of updates 1..k, parameters of 0..k."""
    texts, mse_texts = float_texts(params, dtype), float_texts(batch_mse, dtype)
    start = (0, 0, 0, "", *texts[0], "")
    updates = (
        (k, epoch, batch, " ".join(map(str, rows)), *after, mse)
        for k, ((epoch, batch, rows), after, mse) in enumerate(zip(minibatches, texts[1:], mse_texts, strict=True), 1)
    )
    write_csv(path, steps_header(names), itertools.chain([start], updates))


def read_steps(path: Path | str) -> Steps:
    header, rows = read_csv(path)
    names = tuple(header[len(STEP_COLUMNS) : -1])
    if tuple(header) != steps_header(names) or not names:
        expected = ",".join(steps_header(("<parameters>",)))
        raise DataError(f"{path}: expected header {expected}, found {','.join(header)}")
    try:
        numbers = np.array([[int(r[0]), int(r[1]), int(r[2])] for r in rows], dtype=np.int64).reshape(-1, 3)
        minibatches = tuple(tuple(int(v) for v in r[3].split()) for r in rows)
        params = np.array([[float(v) for v in r[4:-1]] for r in rows], dtype=np.float64).reshape(-1, len(names))
        batch_mse = np.array([float(r[-1]) if r[-1] else np.nan for r in rows], dtype=np.float64)
    except (IndexError, ValueError) as exc:
        raise DataError(f"{path}: not a step record ({exc})") from None
    if not rows or numbers[:, 0].tolist() != list(range(len(rows))) or minibatches[0]:
        raise DataError(f"{path}: steps must run 0..{len(rows) - 1}, step 0 without a minibatch")
    return Steps(names, numbers[:, 1], numbers[:, 2], minibatches, params, batch_mse)

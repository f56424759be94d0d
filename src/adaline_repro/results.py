"""Each backend's results: where they live (one file per backend, named after it, in four folders that
dvc.yaml names) and how to read a trained model and its loss curve back with numpy."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adaline_repro.files import DataError, read_csv, read_json


def curve_file(curves: Path, backend: str) -> Path:
    """One backend's loss curve in the curves folder (the figure reads this folder alone)."""
    return curves / f"{backend}.csv"


@dataclass(frozen=True)
class ResultDirs:
    """The folders of train's and evaluate's outputs; stage commands get them as arguments from dvc.yaml."""

    models: Path
    curves: Path
    predictions: Path
    metrics: Path

    def model(self, backend: str) -> Path:
        return self.models / f"{backend}.json"

    def curve(self, backend: str) -> Path:
        return curve_file(self.curves, backend)

    def prediction(self, backend: str) -> Path:
        return self.predictions / f"{backend}.csv"

    def metric(self, backend: str) -> Path:
        return self.metrics / f"{backend}.json"


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

"""Reading a trained model (models/<backend>.json) and its loss curve (plots/loss/<backend>.csv) with numpy."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adaline_repro.files import read_csv, read_json


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
    dtype = data["dtype"]
    return Model(
        backend=data["backend"],
        device=data["device"],
        dtype=dtype,
        features=tuple(data["features"]),
        weight=np.asarray(data["weight"], dtype=dtype),
        bias=np.asarray(data["bias"], dtype=dtype),
    )


def read_curve(path: Path | str) -> np.ndarray:
    """Train MSE per epoch, epochs 1..N, as float64 holding the logged values exactly."""
    header, rows = read_csv(path)
    if header != ["epoch", "train_mse"]:
        raise ValueError(f"{path}: expected header epoch,train_mse, found {','.join(header)}")
    epochs = [int(r[0]) for r in rows]
    if epochs != list(range(1, len(rows) + 1)):
        raise ValueError(f"{path}: epochs must run 1..{len(rows)}")
    return np.array([float(r[1]) for r in rows], dtype=np.float64)

"""Where each backend's results live: one file per backend, named after it, in four folders."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


def curve_file(curves: Path, backend: str) -> Path:
    """One backend's loss curve in the curves folder (the figure reads this folder alone)."""
    return curves / f"{backend}.csv"


@dataclass(frozen=True)
class ResultDirs:
    """The folders of train's and evaluate's outputs; dvc.yaml names them, stage commands pass them in."""

    models: Path
    curves: Path
    predictions: Path
    metrics: Path

    @classmethod
    def under(cls, root: Path) -> ResultDirs:
        """The repository's own layout below `root` (what dvc.yaml declares)."""
        return cls(root / "models", root / "plots" / "loss", root / "predictions", root / "metrics")

    def model(self, backend: str) -> Path:
        return self.models / f"{backend}.json"

    def curve(self, backend: str) -> Path:
        return curve_file(self.curves, backend)

    def prediction(self, backend: str) -> Path:
        return self.predictions / f"{backend}.csv"

    def metric(self, backend: str) -> Path:
        return self.metrics / f"{backend}.json"

"""The pipeline's paths, read from dvc.yaml's `paths` (their one home) by what runs outside the stages:
`./pipeline repro` and `ui`, the check, the bench and the tests. Stages get theirs as arguments."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from adaline_repro.files import safe_yaml

if TYPE_CHECKING:  # results.py imports numpy; ./pipeline repro's no-op answer reads paths without it
    from adaline_repro.results import CompareFiles, ResultDirs


@dataclass(frozen=True)
class PipelinePaths:
    """Paths relative to the repository root, as dvc.yaml names them."""

    raw: str
    train: str
    test: str
    scaler: str
    models: str
    curves: str
    predictions: str
    metrics: str
    steps: str
    compare_json: str
    compare_md: str
    verdict: str
    loss_plot: str
    diff_plot: str
    figure: str
    marker: str

    def results(self, root: Path = Path()) -> ResultDirs:
        """The per-backend result folders below `root`."""
        from adaline_repro.results import ResultDirs

        return ResultDirs(*(root / folder for folder in self.result_folders))

    def compare_files(self, root: Path = Path()) -> CompareFiles:
        """The compare stage's outputs below `root`."""
        from adaline_repro.results import CompareFiles

        return CompareFiles(*(root / p for p in (self.compare_json, self.compare_md, self.verdict, self.loss_plot,
                                                 self.diff_plot)))  # fmt: skip

    @property
    def result_folders(self) -> tuple[str, ...]:
        return (self.models, self.curves, self.predictions, self.metrics, self.steps)

    @property
    def reports(self) -> tuple[str, ...]:
        """The compare stage's and the track stage's committed reports."""
        return (self.compare_json, self.compare_md, self.verdict, self.loss_plot, self.diff_plot, self.figure)


def pipeline_paths(root: Path) -> PipelinePaths:
    """The `paths` entry of `vars` in root/dvc.yaml."""
    document = safe_yaml((root / "dvc.yaml").read_text(encoding="utf-8"))
    (paths,) = [v["paths"] for v in document["vars"] if isinstance(v, dict) and "paths" in v]
    return PipelinePaths(**paths)


def stage_deps(root: Path, stage: str) -> list[str]:
    """The deps dvc.yaml lists for a stage without a matrix (track, compare, ...), as written there."""
    document = safe_yaml((root / "dvc.yaml").read_text(encoding="utf-8"))
    return [d for d in document["stages"][stage]["deps"] if isinstance(d, str)]

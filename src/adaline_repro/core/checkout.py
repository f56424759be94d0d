"""Where things are in a checkout: its root (also from the copies DVC runs experiments in), its identity,
DVC's scratch folder, the pipeline's paths as dvc.yaml names them, and the paths dvc.lock records.

dvc.yaml's `paths` are the paths' one home: stage commands get theirs as arguments from it, and whatever
runs outside the stages (`./pipeline repro` and `ui`, the check, the sweep, the bench, the tests) reads them
here. dvc.yaml and dvc.lock are DVC's documented, public formats; DVC's private files are read in
dvc_support/internals.py alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from adaline_repro.core.files import safe_yaml

if TYPE_CHECKING:  # results.py imports numpy; ./pipeline repro's no-op answer reads paths without it
    from adaline_repro.core.results import CompareFiles, ResultDirs

# DVC's own scratch space in a checkout (gitignored, on the outputs' file system): the up-to-date stamp, the
# run lock and its record, the snapshots, and DVC's notes of what it is running all live here.
DVC_TMP = Path(".dvc") / "tmp"
# `dvc exp run --temp` and queued experiments run in copies under this folder of the repository (checked
# against real DVC by tests/e2e/test_dvc_support.py).
_DVC_TEMP_WORKSPACES = os.sep + str(DVC_TMP / "exps") + os.sep


def workspace_root() -> Path:
    """The working copy a stage runs in (DVC sets DVC_ROOT for stage commands), else the working directory."""
    return Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()


def repository_root(workspace: Path | None = None) -> Path:
    """The user's repository, also when DVC runs the stage in a temporary copy inside it."""
    workspace = workspace or workspace_root()
    text = str(workspace) + os.sep
    if _DVC_TEMP_WORKSPACES in text:
        return Path(text.split(_DVC_TEMP_WORKSPACES, 1)[0])
    return workspace


def checkout_id(root: Path | None = None) -> str:
    """`host:/path/of/the/repository`: which checkout logged a run, the same from its queued experiments."""
    return f"{os.uname().nodename}:{root or repository_root()}"


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
        from adaline_repro.core.results import ResultDirs

        return ResultDirs(*(root / folder for folder in self.result_folders))

    def compare_files(self, root: Path = Path()) -> CompareFiles:
        """The compare stage's outputs below `root`."""
        from adaline_repro.core.results import CompareFiles

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


def locked_paths(root: Path, sections: tuple[str, ...] = ("deps", "outs")) -> list[str]:
    """Every dependency and/or output path of every stage dvc.lock records."""
    lock_file = root / "dvc.lock"
    lock = safe_yaml(lock_file.read_text(encoding="utf-8")) if lock_file.exists() else None
    paths = set()
    for stage in (lock or {}).get("stages", {}).values():
        for section in sections:
            paths.update(entry["path"] for entry in stage.get(section, []))
    return sorted(paths)

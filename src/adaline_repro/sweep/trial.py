"""One trial: the pipeline's own stages, fetch to compare, in this process, on the trial's params.

Each stage's `write_outputs` is the code its DVC stage runs, writing the same files under the same names
(dvc.yaml's paths) in a scratch folder; the trial keeps the md5 of each, which is what dvc.lock records for
them, so a trial can be held byte for byte against `dvc exp run -S <its values>` (verify.py does). Left out:
the track stage, which logs the execution and draws its figure (the sweep logs each trial itself), and
train's tracking-store check (the sweep checks the store once).
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from adaline_repro.core.checkout import PipelinePaths
from adaline_repro.core.errors import ReproError
from adaline_repro.core.params import Params, as_dict
from adaline_repro.dvc_support.overrides import Overrides
from adaline_repro.sweep.grid import Trial, trial_params

if TYPE_CHECKING:  # comparison imports numpy; the driver imports this module without it
    from adaline_repro.comparison import BackendOutputs, Report

_SHM = Path("/dev/shm")  # noqa: S108 - mkdtemp makes a private folder there; a trial's files are read back at once and thrown away: memory, not disk


@dataclass(frozen=True)
class TrialRecord:
    """What a trial leaves: its params and results, or the error a stage refused it with; where it ran. The
    journal holds it as JSON (to_json / from_json), one line per trial."""

    id: str
    overrides: tuple[str, ...]
    params: dict | None = None  # params.yaml as the trial ran it
    files: dict[str, str] = field(default_factory=dict)  # output path -> md5, as dvc.lock records it
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # backend -> its metrics file
    report: Report | None = None
    tolerance_ratio: float | None = None
    error: str | None = None  # a stage's one line, or `bug: ...`
    traceback: str | None = None  # with a bug
    worker: dict = field(default_factory=dict)  # host, pid, node, max_rss_kb
    fingerprint: dict | None = None  # the worker's, in its first record
    refused: tuple[str, ...] = ()  # what differs between the worker and the driver: the trial did not run

    def to_json(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["overrides"], data["refused"] = list(self.overrides), list(self.refused)
        data["report"] = None if self.report is None else self.report.to_json()
        return data

    @classmethod
    def from_json(cls, data: dict) -> TrialRecord:
        from adaline_repro.comparison import Report

        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in fields}
        values["overrides"], values["refused"] = tuple(data["overrides"]), tuple(data.get("refused", ()))
        values["report"] = None if data.get("report") is None else Report.from_json(data["report"])
        return cls(**values)


def outputs(paths: PipelinePaths, backends: tuple[str, ...]) -> list[str]:
    """Every file the stages fetch to compare write for these backends, relative to the checkout."""
    per_backend = [
        f"{folder}/{backend}.{ext}"
        for backend in backends
        for folder, ext in (
            (paths.models, "json"),
            (paths.curves, "csv"),
            (paths.predictions, "csv"),
            (paths.metrics, "json"),
            (paths.steps, "csv"),
        )
    ]
    return sorted([paths.raw, paths.train, paths.test, paths.scaler, *per_backend, paths.compare_json,
                   paths.compare_md, paths.verdict, paths.loss_plot, paths.diff_plot])  # fmt: skip


def execute(trial: Trial, applied: Overrides, paths: PipelinePaths) -> TrialRecord:
    """The trial's record: its params, each output's md5, each backend's metrics and the verdict; or, when a
    stage raises, the error (a trial's failure is its row, never the sweep's)."""
    scratch = Path(tempfile.mkdtemp(prefix="trial-", dir=_SHM if _SHM.is_dir() else None))
    record = TrialRecord(trial.id, trial.overrides)
    try:
        params = trial_params(applied, trial.overrides)
        record = dataclasses.replace(record, params=as_dict(params))
        report, outputs_read = _stages(params, scratch, paths)
        return dataclasses.replace(
            record,
            files={name: dvc_md5(scratch / name) for name in outputs(paths, params.train.backends)},
            metrics={o.backend: o.metrics for o in outputs_read},
            report=report,
            tolerance_ratio=report.tolerance_ratio,
        )
    except ReproError as exc:  # a configuration the stages refuse: its message, as the stage would print it
        return dataclasses.replace(record, error=str(exc))
    except Exception as exc:
        return dataclasses.replace(record, error=f"bug: {type(exc).__name__}: {exc}", traceback=traceback.format_exc())
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _stages(params: Params, root: Path, paths: PipelinePaths) -> tuple[Report, list[BackendOutputs]]:
    """Every stage of one trial in `root`: the comparison, and the outputs it read (metrics included)."""
    # Imported here: the driver imports this module to name a trial's files, without torch.
    from adaline_repro.comparison import load_outputs
    from adaline_repro.stages import compare, evaluate, fetch, prepare, train

    fetch.write_outputs(params.fetch, root / paths.raw)
    prepare.write_outputs(root / paths.raw, root / paths.train, root / paths.test, root / paths.scaler, params.prepare)
    dirs = paths.results(root)
    for backend in params.train.backends:
        train.write_outputs(
            backend, root / paths.train, dirs.model(backend), dirs.curve(backend), dirs.step(backend), params.train
        )
    evaluate.write_outputs(dirs, params.train.backends, root / paths.train, root / paths.test, params.evaluate)
    outputs = [load_outputs(b, dirs) for b in params.train.backends]  # as the compare stage reads them
    return compare.write_outputs(params, outputs, paths.compare_files(root), root / paths.train), outputs


def dvc_md5(path: Path) -> str:
    """What DVC 3 records for a file in dvc.lock: the md5 of its bytes."""
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()

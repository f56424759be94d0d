"""One trial: the pipeline's own stages, fetch to compare, in this process, on the trial's params.

Each stage's `run` is the code its DVC stage runs, writing the same files under the same names (dvc.yaml's
paths) in a scratch folder; the trial keeps the md5 of each, which is what dvc.lock records for them, so a
trial can be held byte for byte against `dvc exp run -S <its values>` (sweep/verify.py does). Left out:
the track stage, which logs the execution and draws its figure (the sweep logs each trial itself), and
train's tracking-store check (the sweep checks the store once).
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

from adaline_repro.errors import ReproError
from adaline_repro.files import atomic_write_text, read_json
from adaline_repro.params import Params, as_dict
from adaline_repro.paths import PipelinePaths
from adaline_repro.sweep.grid import Trial, trial_params

if TYPE_CHECKING:  # agreement imports numpy; the driver imports this module without it
    from adaline_repro.agreement import Report

_SHM = Path("/dev/shm")  # noqa: S108 - mkdtemp makes a private folder there; a trial's files are read back at once and thrown away: memory, not disk


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


def run(trial: Trial, raw: dict, paths: PipelinePaths) -> dict:
    """The trial's record: its params, each output's md5, each backend's metrics and the verdict; or, when a
    stage raises, the error (a trial's failure is its row, never the sweep's)."""
    record: dict = {"id": trial.id, "overrides": list(trial.overrides)}
    scratch = Path(tempfile.mkdtemp(prefix="trial-", dir=_SHM if _SHM.is_dir() else None))
    try:
        params = trial_params(raw, trial.overrides)
        record["params"] = as_dict(params)
        report = _stages(params, scratch, paths)
        record["files"] = {name: dvc_md5(scratch / name) for name in outputs(paths, params.train.backends)}
        record["metrics"] = {b: read_json(paths.results(scratch).metric(b)) for b in params.train.backends}
        record["compare"] = report.as_dict()
        record["tolerance_ratio"] = report.tolerance_ratio
        record["error"] = None
    except ReproError as exc:  # a configuration the stages refuse: its message, as the stage would print it
        record["error"] = str(exc)
    except Exception as exc:
        record["error"] = f"bug: {type(exc).__name__}: {exc}"
        record["traceback"] = traceback.format_exc()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return record


def _stages(params: Params, root: Path, paths: PipelinePaths) -> Report:
    # Imported here: the driver imports this module to name a trial's files, without torch.
    from adaline_repro.agreement import load_outputs
    from adaline_repro.stages import compare, evaluate, fetch, prepare, train

    atomic_write_text(root / paths.raw, fetch.fetch(params.fetch))
    prepare.run(root / paths.raw, root / paths.train, root / paths.test, root / paths.scaler, params.prepare)
    dirs = paths.results(root)
    for backend in params.train.backends:
        train.run(
            backend, root / paths.train, dirs.model(backend), dirs.curve(backend), dirs.step(backend), params.train
        )
    evaluate.run(dirs, params.train.backends, root / paths.train, root / paths.test, params.evaluate)
    outputs = [load_outputs(b, dirs) for b in params.train.backends]  # as the compare stage reads them
    return compare.run(params, outputs, paths.compare_files(root), root / paths.train)


def dvc_md5(path: Path) -> str:
    """What DVC 3 records for a file in dvc.lock: the md5 of its bytes."""
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()

"""One execution as the tracking store gets it, logged once per store: its params, curves, accuracies and
verdict gathered from the outputs on disk, and its identity, which the track stage's marker keeps.

The marker (`.tracking/logged.json`, machine-local) says which execution this checkout logged, and beside it
(`logged.json.uri`) to which store. An execution is identified by its code (the track stage's modules), its
params, every result file, the compare report and the raw data; the marker holds those digests,
deterministically (no run ids, so dvc.lock stays reproducible), and the parent run is tagged with the
marker's own digest. The store is written to only when the marker does not already vouch for this execution
in this store, and not at all when the store holds it already (logged from another branch or checkout).

The verdict comes from reports/compare.json, which holds no tolerances: changing only the tolerances
re-runs compare alone, and the store is logged to again only when the verdict itself changes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from adaline_repro.core.checkout import locked_paths, pipeline_paths, stage_deps
from adaline_repro.core.files import atomic_write_text, json_text, read_json, sha256_file
from adaline_repro.core.params import Params, as_dict
from adaline_repro.core.tracking_uri import check_tracking_store, embedded_db, redacted, tracking_uri

if TYPE_CHECKING:  # runs.py imports mlflow (seconds): only an execution that is logged pays for it
    # numpy (40 ms), imported where an execution is built: a no-op ./pipeline repro only prepares the store
    from adaline_repro.comparison import Report
    from adaline_repro.core.results import ExecutionInputs, ResultDirs
    from adaline_repro.tracking.runs import Execution


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def source_tags(root: Path = Path()) -> dict[str, str]:
    """Git commit and dirtiness, torch version, DVC experiment name: what makes a run traceable.

    git.dirty says whether code or configuration differ from the commit: the pipeline's outputs (every
    output dvc.lock records, and dvc.lock itself) are rewritten by each run and do not count."""
    tags = {"torch.version": importlib.metadata.version("torch")}
    commit = _git(root, "rev-parse", "HEAD")
    if commit:
        outputs = ["dvc.lock", *locked_paths(root, ("outs",))]
        status = _git(root, "status", "--porcelain", "--untracked-files=no", "--", ".", *(f":!{p}" for p in outputs))
        tags["mlflow.source.git.commit"] = commit
        tags["git.dirty"] = "true" if status else "false"
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc.exp_name"] = os.environ["DVC_EXP_NAME"]
    return tags


def flat_params(params: Params) -> dict[str, str]:
    """params.yaml as MLflow params: `section.key` -> text; lists joined by commas."""
    flat = {}
    for section, values in as_dict(params).items():
        if section in ("tracking", "compare"):
            continue  # not the execution's: where it is logged, and what compare (not track) depends on
        for key, value in values.items():
            if section == "train" and key == "backends":
                continue  # each child run names its own backend; the parent lists them all
            flat[f"{section}.{key}"] = ",".join(value) if isinstance(value, list | tuple) else str(value)
    return flat


def verdict(report: Report) -> tuple[dict[str, float], dict[str, str]]:
    """(parent metrics, parent tags) that show the comparison without opening an artifact."""
    from adaline_repro.comparison import likely_causes

    metrics = {"compare_passed": float(report.passed)}
    found = report.divergence
    tags = {
        "compare.verdict": "passed" if report.passed else "failed",
        "compare.first_divergence": "none" if found is None else found.label,
        "compare.likely_cause": "none" if found is None else likely_causes(found),
    }
    for quantity in ("train_mse", "weights", "predictions"):
        largest = report.largest(quantity)
        tags[f"compare.largest_abs_diff.{quantity}"] = "not comparable" if largest is None else f"{largest:.3g}"
        if largest is not None:
            metrics[f"compare_max_abs_diff_{quantity}"] = largest
    return metrics, tags


def parent_name(report: Report) -> str:
    """`pipeline: passed (max diff 5e-08)`: the verdict where the runs table shows it first."""
    largest = [report.largest(q) for q in ("train_mse", "weights")]
    if any(v is None for v in largest):
        return "pipeline: FAILED (not comparable)"
    return f"pipeline: {'passed' if report.passed else 'FAILED'} (max diff {max(largest):.1g})"


def note(report: Report) -> str:
    """The parent run's description: the verdict and the table of differences."""
    from adaline_repro.comparison import markdown, sentence

    verdict = report.headline
    found = report.divergence
    return (
        (f"{sentence(found)}\n\n" if found else "")
        + f"**Compare {verdict}** (tolerances: params.yaml `compare` at this commit; "
        f"predictions and accuracies exactly).\n\n{report.difference_table()}\n"
        f"{markdown(found)}"
    )


def build_execution(
    params: Params, dirs: ResultDirs, inputs: ExecutionInputs, report: Report, raw_sha256: str
) -> Execution:
    """The Execution to log, from the outputs on disk (runs.py is imported here, not at module load)."""
    from adaline_repro.core.results import read_curve, read_model
    from adaline_repro.tracking.runs import BackendRun, Dataset, Execution

    metrics, tags = verdict(report)
    backends = []
    for backend in params.train.backends:
        # The small files only: the step record is logged as a file, never parsed here.
        backends.append(
            BackendRun(
                backend=backend,
                device=read_model(dirs.model(backend)).device,
                losses=read_curve(dirs.curve(backend)).tolist(),
                metrics={k: float(v) for k, v in read_json(dirs.metric(backend)).items()},
                artifacts={
                    "loss_curve.csv": dirs.curve(backend),
                    "model.json": dirs.model(backend),
                    "predictions.csv": dirs.prediction(backend),
                    "steps.csv": dirs.step(backend),
                },
            )
        )
    return Execution(
        experiment=params.tracking.experiment,
        params=flat_params(params),
        tags={**source_tags(), "data.sha256": raw_sha256},
        backends=backends,
        datasets=[
            Dataset("iris-train", inputs.train, sha256_file(inputs.train)[:16], "training"),
            Dataset("iris-test", inputs.test, sha256_file(inputs.test)[:16], "evaluation"),
        ],
        verdict=metrics,
        verdict_tags=tags,
        reports={"compare.json": json_text(report.to_json())},
        note=note(report),
        parent_artifacts=[inputs.figure],
        parent_name=parent_name(report),
    )


def log_and_say(
    params: Params, dirs: ResultDirs, inputs: ExecutionInputs, report: Report, marker: Path, stage: str = "track"
) -> str:
    """Log the execution unless this store holds it already, write the marker, and say which in one line
    (`stage`: track, or compare when it fails), with any runs a dead process had left RUNNING."""
    uri = tracking_uri()
    raw_sha256 = sha256_file(inputs.raw)
    text = marker_text(params, dirs, report, raw_sha256)
    verdict = "passed" if report.passed else "FAILED"
    held = f"{stage}: {redacted(uri)} already holds this execution (compare {verdict})"
    if vouches(marker, text, uri):
        return held  # MLflow is not even imported
    from adaline_repro.tracking.runs import log_execution
    from adaline_repro.tracking.store import EXECUTION_TAG, end_orphaned_runs, holds_execution

    ended = end_orphaned_runs(uri)
    eid = execution_id(text)
    if holds_execution(uri, params.tracking.experiment, eid) is not None:  # logged before, e.g. on another branch
        write_marker(marker, text, uri)
        return held
    execution = build_execution(params, dirs, inputs, report, raw_sha256)
    parent = log_execution(uri, dataclasses.replace(execution, tags={**execution.tags, EXECUTION_TAG: eid}))
    write_marker(marker, text, uri)
    line = f"{stage}: logged run {parent} and {len(params.train.backends)} backend runs (compare {verdict})"
    if ended:
        line += f"; marked {ended} run(s) KILLED that a dead process of this checkout left RUNNING"
    return line


# --- the marker: which execution this checkout logged, and where -------------------------------------


def uri_file(marker: Path) -> Path:
    """Beside the marker: the store it vouches for, so `./pipeline repro` can notice a switch of store."""
    return marker.with_name(marker.name + ".uri")


def marker_text(params: Params, dirs: ResultDirs, report: Report, raw_sha256: str) -> str:
    """What the marker holds: specific enough that a different execution never matches it."""
    files = {backend: [sha256_file(path) for path in dirs.files(backend)] for backend in params.train.backends}
    content = json_text({"params": flat_params(params), "results": files, "compare": report.to_json()})
    return json_text(
        {
            "backends": list(params.train.backends),
            "code_sha256": code_sha256(),
            "compare_passed": report.passed,
            "content_sha256": hashlib.sha256(content.encode("utf-8")).hexdigest(),
            "data_sha256": raw_sha256,
            "experiment": params.tracking.experiment,
        }
    )


def code_sha256() -> str:
    """The code that made the execution: every module the track stage's deps name in dvc.yaml (a folder's
    modules, each), by its path and bytes."""
    root = Path(__file__).resolve().parents[3]  # the checkout this code runs from (a DVC temp copy's own)
    digest = hashlib.sha256()
    for dep in stage_deps(root, "track"):
        path = root / dep
        if not dep.startswith("src/"):
            continue
        for module in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            name = module.relative_to(root).as_posix()
            digest.update(f"{name}\0".encode())
            digest.update(hashlib.sha256(module.read_bytes()).digest())
    return digest.hexdigest()


def execution_id(text: str) -> str:
    """The id a parent run is tagged with: the sha256 of the marker text (code, params, outputs, data)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def vouches(marker: Path, text: str, uri: str) -> bool:
    """The marker says this execution was logged to this store."""
    found = uri_file(marker)
    return (
        marker.exists()
        and found.exists()
        and marker.read_text(encoding="utf-8") == text
        and found.read_text(encoding="utf-8").strip() == uri
    )


def write_marker(marker: Path, text: str, uri: str) -> None:
    atomic_write_text(uri_file(marker), uri + "\n")
    atomic_write_text(marker, text)


def prepare_store(root: Path) -> None:
    """Before DVC starts: a tracking server must answer; the embedded store is created once (before any
    parallel use); a marker that vouches for runs in another (or a deleted) store is removed, so DVC runs
    the track stage again."""
    uri = tracking_uri(root)
    check_tracking_store(uri)
    db = embedded_db(uri)
    marker = root / pipeline_paths(root).marker
    found = uri_file(marker)
    if found.exists():
        logged_to = found.read_text(encoding="utf-8").strip()
        if logged_to != uri or (db is not None and not db.exists()):
            marker.unlink(missing_ok=True)
            found.unlink()
    if db is not None and not db.exists():
        from adaline_repro.tracking.store import init_store  # MLflow: seconds, paid only for a new store

        init_store(uri)

"""One execution as the tracking store gets it: its params, curves, accuracies and verdict gathered from the
outputs on disk, logged once per store (the marker says which store already holds it).

The verdict comes from reports/compare.json, which holds no tolerances: changing only the tolerances
re-runs compare alone, and the store is logged to again only when the verdict itself changes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from adaline_repro import divergence
from adaline_repro.agreement import difference_table
from adaline_repro.files import atomic_write_text, json_text, read_json, sha256_file
from adaline_repro.lockfile import locked_paths
from adaline_repro.params import Params, as_dict
from adaline_repro.paths import stage_deps
from adaline_repro.results import ExecutionInputs, ResultDirs, read_curve, read_model
from adaline_repro.workspace import marker_uri_file

if TYPE_CHECKING:  # tracking imports mlflow (seconds): only the function that logs pays for it
    from adaline_repro.tracking.store import Execution


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


def verdict(report: dict) -> tuple[dict[str, float], dict[str, str]]:
    """(parent metrics, parent tags) that show the comparison without opening an artifact."""
    metrics = {"compare_passed": float(report["passed"])}
    found = report["first_divergence"]
    tags = {
        "compare.verdict": "passed" if report["passed"] else "failed",
        "compare.first_divergence": "none" if found is None else found["label"],
        "compare.likely_cause": "none" if found is None else divergence.likely_causes(found),
    }
    for quantity in ("train_mse", "weights", "predictions"):
        largest = report["largest_abs_diff"][quantity]
        tags[f"compare.largest_abs_diff.{quantity}"] = "not comparable" if largest is None else f"{largest:.3g}"
        if largest is not None:
            metrics[f"compare_max_abs_diff_{quantity}"] = largest
    return metrics, tags


def parent_name(report: dict) -> str:
    """`pipeline: passed (max diff 5e-08)`: the verdict where the runs table shows it first."""
    largest = [report["largest_abs_diff"][q] for q in ("train_mse", "weights")]
    if any(v is None for v in largest):
        return "pipeline: FAILED (not comparable)"
    return f"pipeline: {'passed' if report['passed'] else 'FAILED'} (max diff {max(largest):.1g})"


def note(report: dict) -> str:
    """The parent run's description: the verdict and the table of differences."""
    verdict = "passed: the backends agree" if report["passed"] else "FAILED: the backends differ"
    found = report["first_divergence"]
    return (
        (f"{divergence.sentence(found)}\n\n" if found else "")
        + f"**Compare {verdict}** (tolerances: params.yaml `compare` at this commit; "
        f"predictions and accuracies exactly).\n\n{difference_table(report)}\n"
        f"{divergence.markdown(report['first_divergence'])}"
    )


def marker_text(params: Params, dirs: ResultDirs, report: dict, raw_sha256: str) -> str:
    """What the marker output holds: what was logged, deterministically (no run ids, so dvc.lock stays
    reproducible), and specific enough that a different execution never matches it: the code (the track
    stage's modules), the params, every result file, the compare report and the raw data."""
    files = {backend: [sha256_file(path) for path in dirs.files(backend)] for backend in params.train.backends}
    content = json_text({"params": flat_params(params), "results": files, "compare": report})
    return json_text(
        {
            "backends": list(params.train.backends),
            "code_sha256": code_sha256(),
            "compare_passed": report["passed"],
            "content_sha256": hashlib.sha256(content.encode("utf-8")).hexdigest(),
            "data_sha256": raw_sha256,
            "experiment": params.tracking.experiment,
        }
    )


def code_sha256() -> str:
    """The code that made the execution: the track stage's modules as dvc.yaml lists them (every module
    the logged record derives from), each by its path and bytes."""
    root = Path(__file__).resolve().parents[3]  # the checkout this code runs from (a DVC temp copy's own)
    digest = hashlib.sha256()
    for name in sorted(d for d in stage_deps(root, "track") if d.startswith("src/")):
        digest.update(f"{name}\0".encode())
        digest.update(hashlib.sha256((root / name).read_bytes()).digest())
    return digest.hexdigest()


def execution_id(marker: str) -> str:
    """The id a parent run is tagged with: the sha256 of the marker text (code, params, outputs, data)."""
    return hashlib.sha256(marker.encode("utf-8")).hexdigest()


def build_execution(
    params: Params, dirs: ResultDirs, inputs: ExecutionInputs, report: dict, raw_sha256: str
) -> Execution:
    """The Execution to log, from the outputs on disk (tracking is imported here, not at module load)."""
    from adaline_repro.tracking.store import BackendRun, Dataset, Execution

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
        reports={"compare.json": json_text(report)},
        note=note(report),
        parent_artifacts=[inputs.figure],
        parent_name=parent_name(report),
    )


@dataclass(frozen=True)
class Logged:
    parent: str | None  # the parent run id, or None when the store already held this execution
    orphans_ended: int = 0  # runs a dead process of this checkout had left RUNNING, now KILLED


def log(params: Params, dirs: ResultDirs, inputs: ExecutionInputs, report: dict, marker: Path) -> Logged:
    """Log the execution unless the marker says this store already has it; then write the marker."""
    from adaline_repro.workspace import tracking_uri

    uri = tracking_uri()
    raw_sha256 = sha256_file(inputs.raw)
    text = marker_text(params, dirs, report, raw_sha256)
    uri_file = marker_uri_file(marker)
    if (
        marker.exists()
        and uri_file.exists()
        and marker.read_text(encoding="utf-8") == text
        and uri_file.read_text(encoding="utf-8").strip() == uri
    ):
        return Logged(None)  # MLflow is not even imported
    from adaline_repro.tracking.store import EXECUTION_TAG, end_orphaned_runs, holds_execution, log_execution

    ended = end_orphaned_runs(uri)
    eid = execution_id(text)
    if holds_execution(uri, params.tracking.experiment, eid) is not None:  # logged before, e.g. on another branch
        write_marker(marker, text, uri)
        return Logged(None, ended)
    execution = build_execution(params, dirs, inputs, report, raw_sha256)
    parent = log_execution(uri, dataclasses.replace(execution, tags={**execution.tags, EXECUTION_TAG: eid}))
    write_marker(marker, text, uri)
    return Logged(parent, ended)


def write_marker(marker: Path, text: str, uri: str) -> None:
    atomic_write_text(marker_uri_file(marker), uri + "\n")
    atomic_write_text(marker, text)


def logged_line(logged: Logged, params: Params, report: dict, stage: str = "track") -> str:
    """What `stage` (track, or compare when it fails) says about the store: logged now, or already there
    (and any orphaned runs it ended)."""
    from adaline_repro.workspace import redacted, tracking_uri

    verdict = "passed" if report["passed"] else "FAILED"
    if logged.parent is None:
        return f"{stage}: {redacted(tracking_uri())} already holds this execution (compare {verdict})"
    line = f"{stage}: logged run {logged.parent} and {len(params.train.backends)} backend runs (compare {verdict})"
    if logged.orphans_ended:
        line += f"; marked {logged.orphans_ended} run(s) KILLED that a dead process of this checkout left RUNNING"
    return line

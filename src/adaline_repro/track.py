"""Track stage: gathers one execution's params, curves, accuracies and verdict, and hands them to tracking."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from adaline_repro.compare import BackendOutputs, Report
from adaline_repro.files import atomic_write_text, json_text, sha256_file
from adaline_repro.params import Params

if TYPE_CHECKING:  # tracking imports mlflow (seconds): only the function that logs pays for it
    from adaline_repro.tracking import Execution

# Pipeline outputs that dvc repro rewrites; their being modified does not make the code dirty.
_OUTPUTS = ("dvc.lock", "metrics", "plots", "reports")


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], capture_output=True, text=True, check=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def source_tags() -> dict[str, str]:
    """Git commit and dirtiness, torch version, DVC experiment name: what makes a run traceable."""
    tags = {"torch.version": importlib.metadata.version("torch")}
    commit = _git("rev-parse", "HEAD")
    if commit:
        status = _git("status", "--porcelain", "--untracked-files=no", "--", ".", *(f":!{p}" for p in _OUTPUTS))
        tags["mlflow.source.git.commit"] = commit
        tags["git.dirty"] = "true" if status else "false"
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc.exp_name"] = os.environ["DVC_EXP_NAME"]
    return tags


def flat_params(params: Params) -> dict[str, str]:
    """params.yaml as MLflow params: `section.key` -> text; lists joined by commas."""
    flat = {}
    for section, values in params.model_dump().items():
        if section == "tracking":
            continue
        for key, value in values.items():
            if section == "train" and key == "backends":
                continue  # each child run names its own backend; the parent lists them all
            flat[f"{section}.{key}"] = ",".join(value) if isinstance(value, list | tuple) else str(value)
    return flat


def verdict(report: Report) -> tuple[dict[str, float], dict[str, str]]:
    """(parent metrics, parent tags) that show the comparison without opening an artifact."""
    metrics = {"compare_passed": float(report.passed)}
    tags = {"compare.verdict": "passed" if report.passed else "failed"}
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


def marker_text(params: Params, report: Report, raw_sha256: str) -> str:
    """What the marker output holds: deterministic, so dvc.lock stays reproducible (no run ids)."""
    return json_text(
        {
            "backends": list(params.train.backends),
            "compare_passed": report.passed,
            "data_sha256": raw_sha256,
            "experiment": params.tracking.experiment,
        }
    )


def build_execution(params: Params, outputs: list[BackendOutputs], report: Report, files: dict[str, Path]) -> Execution:
    """The Execution to log, from the outputs on disk (tracking is imported here, not at module load)."""
    from adaline_repro.tracking import BackendRun, Dataset, Execution

    raw_sha = sha256_file(files["raw"])
    metrics, tags = verdict(report)
    backends = []
    for out in outputs:
        model_path = files["models"] / f"{out.backend}.json"
        backends.append(
            BackendRun(
                backend=out.backend,
                device=out.device,
                losses=out.curve.tolist(),
                metrics={k: float(v) for k, v in out.metrics.items()},
                artifacts={
                    "loss_curve.csv": files["curves"] / f"{out.backend}.csv",
                    "model.json": model_path,
                    "predictions.csv": files["predictions"] / f"{out.backend}.csv",
                },
            )
        )
    return Execution(
        experiment=params.tracking.experiment,
        params=flat_params(params),
        tags={**source_tags(), "data.sha256": raw_sha},
        backends=backends,
        datasets=[
            Dataset("iris-train", files["train"], sha256_file(files["train"])[:16], "training"),
            Dataset("iris-test", files["test"], sha256_file(files["test"])[:16], "evaluation"),
        ],
        verdict=metrics,
        verdict_tags=tags,
        reports={"compare.json": json_text(report.as_dict()), "compare.md": report.markdown()},
        parent_artifacts=[files["figure"]],
        parent_name=parent_name(report),
    )


def marker_uri_file(marker: Path) -> Path:
    """Beside the marker: the store it vouches for, so `./pipeline repro` can notice a switch of store."""
    return marker.with_name(marker.name + ".uri")


def write_marker(marker: Path, text: str, uri: str) -> None:
    atomic_write_text(marker_uri_file(marker), uri + "\n")
    atomic_write_text(marker, text)

"""What the check finds in a fresh run, against the committed results: the same bytes (identical), other
bytes that something explains and every value within the compare tolerances (within tolerance), or anything
else (drift); per backend, the first update step at which its fresh record parts from its committed one,
and why. DeviceRun holds one device's run and these findings; check_report.py says them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from adaline_repro.comparison import (
    BackendOutputs,
    Divergence,
    Lecture,
    PairResult,
    compare_pair,
    first_divergence,
    tolerance_ratio,
)
from adaline_repro.core.checkout import PipelinePaths
from adaline_repro.core.errors import EXIT_BROKEN, EXIT_DIFFER, EXIT_DRIFT, EXIT_OK
from adaline_repro.core.params import CompareParams, Params
from adaline_repro.ops.byte_diff import FirstDifference, differing_files
from adaline_repro.ops.fingerprint import Difference

# A device run's fresh results against the committed ones.
IDENTICAL = "identical"  # the same bytes
WITHIN_TOLERANCE = "within tolerance"  # other bytes, explained by the device or the environment, and close
DRIFT = "drift"  # anything else: a finding


@dataclass
class DeviceRun:
    device: str
    returncode: int
    compare_passed: bool | None
    log_tail: str
    results_root: Path | None = None  # where this run's result files were kept
    follows_lecture: bool | None = None  # compare.json's: every update of every backend is the lecture's
    train: Path | None = None  # the run's training table, which the cause rules replay updates on
    lock_identical: bool | None = None  # the fresh dvc.lock equals the committed one byte for byte
    results: list[BackendOutputs] = field(default_factory=list)
    drift: list[PairResult] = field(default_factory=list)
    divergences: dict[str, Divergence | None] = field(
        default_factory=dict
    )  # backend -> committed vs fresh, first step apart
    byte_differences: list[FirstDifference] = field(default_factory=list)
    outcome: str | None = None  # IDENTICAL, WITHIN_TOLERANCE or DRIFT, once compared
    explained_by: list[str] = field(default_factory=list)  # why other bytes are expected here
    largest_ratio: float | None = None  # the largest committed-fresh difference in tolerance units

    @property
    def broken(self) -> bool:
        return self.returncode != 0 and self.compare_passed is not False

    @property
    def error(self) -> str | None:
        """A broken run's one line: the last `error:` line ./pipeline printed (the project's own errors take
        that form), else the log's last line."""
        if not self.broken:
            return None
        lines = [line.strip() for line in self.log_tail.splitlines() if line.strip()]
        said = [line for line in lines if line.startswith("error:")]
        return (said or lines or [f"./pipeline repro exited with {self.returncode}"])[-1]


def compared_paths(paths: PipelinePaths) -> tuple[str, ...]:
    """What a fresh run is compared on, and what --update rewrites: every result and report, and dvc.lock."""
    return (*paths.result_folders, *paths.reports, "dvc.lock")


def drift(reference: list[BackendOutputs], fresh: list[BackendOutputs], tol: CompareParams) -> list[PairResult]:
    """Each backend against its own committed self: floats within tolerance, the rest exactly."""
    return [compare_pair(ref, new, tol) for ref, new in zip(reference, fresh, strict=True)]


def divergences(
    reference: list[BackendOutputs],
    fresh: list[BackendOutputs],
    names: tuple[str, str],
    tol: CompareParams,
    lecture: Lecture | None = None,
) -> dict[str, Divergence | None]:
    """Each backend's first update step at which its two records part (None: never), by the locator compare
    uses across backends; `names` label the two records in the explanation."""
    return {
        ref.backend: first_divergence(dict(zip(names, (ref.steps, new.steps), strict=True)), tol, lecture)
        for ref, new in zip(reference, fresh, strict=True)
    }


def result_files(paths: PipelinePaths, *roots: Path) -> list[str]:
    """The files of compared_paths below any of `roots`, relative to it, in that order (dvc.lock last)."""
    names: dict[str, None] = {}
    for rel in compared_paths(paths):
        found = {str(p.relative_to(r)) for r in roots for p in [r / rel, *(r / rel).rglob("*")] if p.is_file()}
        names.update(dict.fromkeys(sorted(found)))
    return list(names)


def explanations(
    run_device: str, reference_device: str | None, env_diffs: list[Difference], versions: Sequence[str] = ()
) -> list[str]:
    """What makes other bytes expected: another device than the committed results', a fingerprint
    difference that the CPU pins cannot cover (architecture, library versions, the pins themselves), or the
    packages `check --with` changed."""
    reasons = []
    if reference_device is not None and run_device != reference_device:
        reasons.append(f"device: committed results from {reference_device}, this run on {run_device}")
    return reasons + [str(d) for d in env_diffs if d.explains_bytes] + [f"--with {v}" for v in versions]


def outcome(byte_differences: list[FirstDifference], explained_by: list[str], drift: list[PairResult]) -> str:
    """IDENTICAL for the same bytes; other bytes are WITHIN_TOLERANCE only when something explains them and
    every value is within the compare tolerances; else DRIFT."""
    if not byte_differences:
        return IDENTICAL
    if explained_by and all(p.passed for p in drift):
        return WITHIN_TOLERANCE
    return DRIFT


def exit_code(runs: list[DeviceRun], cross: list[PairResult]) -> int:
    if any(r.broken for r in runs):
        return EXIT_BROKEN
    if any(r.compare_passed is False for r in runs) or not all(p.passed for p in cross):
        return EXIT_DIFFER
    if any(r.outcome == DRIFT for r in runs):
        return EXIT_DRIFT
    return EXIT_OK


def judge(
    repo: Path,
    run: DeviceRun,
    reference: list[BackendOutputs],
    env_diffs: list[Difference],
    params: Params,
    paths: PipelinePaths,
    versions: Sequence[str] = (),
) -> None:
    """A fresh run's results (kept in run.results_root) against the committed ones in `repo`: what moved
    beyond the tolerances and by how much, from which update step, which files have other bytes, whether
    anything (`versions`: the packages --with changed) explains them, and so the outcome."""
    run.drift = drift(reference, run.results, params.compare)
    ratios = [tolerance_ratio([ref, new], params.compare) for ref, new in zip(reference, run.results, strict=True)]
    run.largest_ratio = None if None in ratios else max(ratios, default=0.0)
    lecture = Lecture.read(run.train, params.train.lr) if run.train else None
    run.divergences = divergences(reference, run.results, ("committed", "fresh"), params.compare, lecture)
    run.byte_differences = differing_files(repo, run.results_root, result_files(paths, repo, run.results_root))
    run.lock_identical = all(d.file != "dvc.lock" for d in run.byte_differences)
    run.explained_by = explanations(run.results[0].device, reference[0].device, env_diffs, versions)
    run.outcome = outcome(run.byte_differences, run.explained_by, run.drift)

"""What the check finds in a fresh run, against the committed results, and the report that says it
(reports/check.json and .md): the same bytes (identical), other bytes that something explains and every
value within the compare tolerances (within tolerance), or anything else (drift); per backend, the first
update step at which its fresh record parts from its committed one, and why. DeviceRun holds one device's
run and these findings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from adaline_repro.comparison import (
    BackendOutputs,
    Divergence,
    Lecture,
    PairResult,
    compare_pair,
    first_divergence,
    summary,
)
from adaline_repro.core.checkout import PipelinePaths
from adaline_repro.core.errors import EXIT_BROKEN, EXIT_DIFFER, EXIT_DRIFT, EXIT_OK, EXIT_STALE
from adaline_repro.core.params import CompareParams, Params
from adaline_repro.ops.byte_diff import FirstDifference, differing_files
from adaline_repro.ops.fingerprint import Difference, differences

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

    @property
    def broken(self) -> bool:
        return self.returncode != 0 and self.compare_passed is not False


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


def explanations(run_device: str, reference_device: str | None, env_diffs: list[Difference]) -> list[str]:
    """What makes other bytes expected: another device than the committed results', or a fingerprint
    difference that the CPU pins cannot cover (architecture, library versions, the pins themselves)."""
    reasons = []
    if reference_device is not None and run_device != reference_device:
        reasons.append(f"device: committed results from {reference_device}, this run on {run_device}")
    return reasons + [str(d) for d in env_diffs if d.explains_bytes]


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
) -> None:
    """A fresh run's results (kept in run.results_root) against the committed ones in `repo`: what moved
    beyond the tolerances, from which update step, which files have other bytes, whether anything explains
    them, and so the outcome."""
    run.drift = drift(reference, run.results, params.compare)
    lecture = Lecture.read(run.train, params.train.lr) if run.train else None
    run.divergences = divergences(reference, run.results, ("committed", "fresh"), params.compare, lecture)
    run.byte_differences = differing_files(repo, run.results_root, result_files(paths, repo, run.results_root))
    run.lock_identical = all(d.file != "dvc.lock" for d in run.byte_differences)
    run.explained_by = explanations(run.results[0].device, reference[0].device, env_diffs)
    run.outcome = outcome(run.byte_differences, run.explained_by, run.drift)


# --- the report ---------------------------------------------------------------------------------------

STATUS = {
    EXIT_OK: "passed",
    EXIT_DIFFER: "backends differ",
    EXIT_DRIFT: "drift",
    EXIT_STALE: "stale",
    EXIT_BROKEN: "broken",
}


def _pairs_table(pairs: list[PairResult], left: str, right: str) -> list[str]:
    lines = [f"| backend | quantity | {left} vs {right}: max abs diff | at | first out of tolerance | result |"]
    lines.append("|---|---|---|---|---|---|")
    for p in pairs:
        for d in p.differences:
            size = "not comparable" if d.max_abs_diff is None else f"{d.max_abs_diff:.3g}"
            first = f"{d.first_failure} ({d.first_failure_diff:.3g})" if d.first_failure_diff is not None else "-"
            lines.append(f"| {p.a} | {d.quantity} | {size} | {d.at} | {first} | {'ok' if d.passed else 'MOVED'} |")
    return lines


def report(
    code: int,
    stale: list[str],
    runs: list[DeviceRun],
    cross: list[PairResult],
    cross_divergences: dict[str, Divergence | None],
    env_ref: dict | None,
    env_now: dict,
) -> tuple[dict, str]:
    """(check.json content, check.md text)."""
    data = {
        "status": STATUS[code],
        "exit_code": code,
        "stale": stale,
        "dvc_lock_identical": {r.device: r.lock_identical for r in runs},
        "devices": {
            r.device: {
                "returncode": r.returncode,
                "compare_passed": r.compare_passed,
                "outcome": r.outcome,
                "explained_by": r.explained_by,
                "byte_differences": [d.as_dict() for d in r.byte_differences],
                "drift": {p.a: p.to_json() for p in r.drift},
                "first_divergence": _divergences_json(r.divergences),
                "log_tail": r.log_tail if r.returncode else "",
            }
            for r in runs
        },
        "cross_device": {p.a: p.to_json() for p in cross},
        "cross_device_first_divergence": _divergences_json(cross_divergences),
        "environment": {
            "reference": env_ref,
            "now": env_now,
            "differences": [str(d) for d in differences(env_ref, env_now)] if env_ref else [NO_REFERENCE],
        },
    }
    md = [f"# Reproducibility check: {STATUS[code]}", ""]
    if stale:
        md += ["dvc.lock is stale: params.yaml or the code changed since it was written. Run `./pipeline repro`", ""]
        md += [f"- {reason}" for reason in stale] + [""]
    for r in runs:
        verdict = {True: "backends agree", False: "BACKENDS DIFFER", None: "BROKEN RUN"}[r.compare_passed]
        md += [f"## {r.device}: {verdict}", ""]
        if r.outcome is not None:
            md += _outcome_lines(r)
        if r.broken:
            md += ["```", r.log_tail.strip(), "```", ""]
        if r.drift:
            moved = [f"{p.a} {d.quantity}" for p in r.drift for d in p.differences if not d.passed]
            md += [f"Against the committed results: {'moved: ' + ', '.join(moved) if moved else 'no drift'}.", ""]
            md += [*_pairs_table(r.drift, "committed", "fresh"), "", *_divergence_lines(r.divergences)]
    if cross:
        md += ["## Across devices", "", *_pairs_table(cross, runs[0].device, runs[1].device), ""]
        md += _divergence_lines(cross_divergences)
    md += ["## Environment", "", "| | committed | now |", "|---|---|---|"]
    for key in _ENVIRONMENT_ROWS:
        md.append(f"| {key} | {_leaf(env_ref, key) if env_ref else '-'} | {_leaf(env_now, key)} |")
    md += ["", "Differences: " + ("; ".join(data["environment"]["differences"]) or "none")]
    return data, "\n".join(md) + "\n"


NO_REFERENCE = "no committed environment.json"
_ENVIRONMENT_ROWS = (
    "python", "torch", "numpy", "architecture", "platform", "cpu.model", "cpu.flags", "cpu_pins.enabled",
    "cpu_kernels.aten_capability", "cpu_kernels.torch_threads", "cpu_kernels.mkl.version",
    "cpu_kernels.mkl.code_path", "cpu_kernels.mkl.cnr", "cpu_kernels.mkl.threads", "cpu_kernels.onednn.calls",
    "cuda.available", "cuda.device",
)  # fmt: skip


def _divergences_json(found: dict[str, Divergence | None]) -> dict[str, dict | None]:
    return {backend: None if d is None else d.to_json() for backend, d in found.items()}


def _divergence_lines(found: dict[str, Divergence | None]) -> list[str]:
    """Where each backend's two records part, and the likely cause; nothing when none does."""
    lines = [f"- {backend}: {summary(d)}" for backend, d in found.items() if d is not None]
    return [*lines, ""] if lines else []


def _leaf(data: dict, dotted: str) -> object:
    for key in dotted.split("."):
        data = data.get(key, "-") if isinstance(data, dict) else "-"
    return data


def _outcome_lines(r: DeviceRun) -> list[str]:
    if r.outcome == IDENTICAL:
        return ["**Identical**: every committed result file, dvc.lock included, has the same bytes.", ""]
    lines = [f"**{r.outcome.capitalize()}**: {len(r.byte_differences)} committed files have other bytes."]
    if r.outcome == WITHIN_TOLERANCE:
        lines.append("Expected, because: " + "; ".join(r.explained_by) + ". Every value is within tolerance.")
    elif r.explained_by:
        lines.append("Values moved beyond the tolerances although other bytes were expected: "
                     + "; ".join(r.explained_by) + ".")  # fmt: skip
    else:
        lines.append("Nothing explains them: same architecture, libraries and CPU pins as the committed results.")
    return [*lines, "", *(f"- {d}" for d in r.byte_differences), ""]

"""`./pipeline check`'s result: each device run's findings (DeviceRun), its outcome against the committed
results, and the report built from them (reports/check.json and reports/check.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from adaline_repro import divergence
from adaline_repro.agreement import BackendOutputs, PairResult
from adaline_repro.errors import EXIT_BROKEN, EXIT_DIFFER, EXIT_DRIFT, EXIT_OK, EXIT_STALE
from adaline_repro.ops.byte_diff import FirstDifference
from adaline_repro.ops.fingerprint import differences

STATUS = {
    EXIT_OK: "passed",
    EXIT_DIFFER: "backends differ",
    EXIT_DRIFT: "drift",
    EXIT_STALE: "stale",
    EXIT_BROKEN: "broken",
}

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
    divergences: dict[str, dict | None] = field(default_factory=dict)  # backend -> committed vs fresh, first step apart
    byte_differences: list[FirstDifference] = field(default_factory=list)
    outcome: str | None = None  # IDENTICAL, WITHIN_TOLERANCE or DRIFT, once compared
    explained_by: list[str] = field(default_factory=list)  # why other bytes are expected here

    @property
    def broken(self) -> bool:
        return self.returncode != 0 and self.compare_passed is not False


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
    cross_divergences: dict[str, dict | None],
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
                "drift": {p.a: {d.quantity: d.as_dict() for d in p.differences} for p in r.drift},
                "first_divergence": r.divergences,
                "log_tail": r.log_tail if r.returncode else "",
            }
            for r in runs
        },
        "cross_device": {p.a: {d.quantity: d.as_dict() for d in p.differences} for p in cross},
        "cross_device_first_divergence": cross_divergences,
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


def _divergence_lines(found: dict[str, dict | None]) -> list[str]:
    """Where each backend's two records part, and the likely cause; nothing when none does."""
    lines = [f"- {backend}: {divergence.summary(d)}" for backend, d in found.items() if d is not None]
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

"""The check's report, reports/check.json and .md: the verdict per device run (identical, within tolerance
with the largest difference in tolerance units, drift with each backend's first diverging step and cause,
or broken with its log), whether the backends agree, the versions `--with` changed, and the environment."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from adaline_repro.comparison import Divergence, PairResult, summary
from adaline_repro.core.errors import EXIT_BROKEN, EXIT_DIFFER, EXIT_DRIFT, EXIT_OK, EXIT_STALE
from adaline_repro.ops.check_findings import IDENTICAL, WITHIN_TOLERANCE, DeviceRun
from adaline_repro.ops.fingerprint import differences
from adaline_repro.ops.upgrade import ScratchVenv
from adaline_repro.ops.versions import Change, InstallFailed

if TYPE_CHECKING:
    from adaline_repro.tracking.check_runs import CheckRun

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
    specs: tuple[str, ...] = (),
    upgrade: ScratchVenv | None = None,
) -> tuple[dict, str]:
    """(check.json content, check.md text); `specs` and `upgrade`: check --with's (no venv when stale)."""
    data = {
        "status": STATUS[code],
        "exit_code": code,
        **({"with": upgrade.to_json() if upgrade else {"specs": list(specs)}} if specs else {}),
        "stale": stale,
        "dvc_lock_identical": {r.device: r.lock_identical for r in runs},
        "devices": {r.device: _device_json(r) for r in runs},
        "cross_device": {p.a: p.to_json() for p in cross},
        "cross_device_first_divergence": _divergences_json(cross_divergences),
        "environment": {
            "reference": env_ref,
            "now": env_now,
            "differences": [str(d) for d in differences(env_ref, env_now)] if env_ref else [NO_REFERENCE],
        },
    }
    md = [f"# Reproducibility check{title(specs)}: {STATUS[code]}", ""]
    if upgrade:
        md += _version_lines(upgrade)
    if stale:
        md += ["dvc.lock is stale: params.yaml or the code changed since it was written. Run `./pipeline repro`", ""]
        md += [f"- {reason}" for reason in stale] + [""]
    for r in runs:
        md += _device_lines(r)
    if cross:
        md += ["## Across devices", "", *_pairs_table(cross, runs[0].device, runs[1].device), ""]
        md += _divergence_lines(cross_divergences)
    md += ["## Environment", "", "| | committed | now |", "|---|---|---|"]
    for key in _ENVIRONMENT_ROWS:
        md.append(f"| {key} | {_leaf(env_ref, key) if env_ref else '-'} | {_leaf(env_now, key)} |")
    md += ["", "Differences: " + ("; ".join(data["environment"]["differences"]) or "none")]
    return data, "\n".join(md) + "\n"


def _device_json(r: DeviceRun) -> dict:
    return {
        "returncode": r.returncode,
        "compare_passed": r.compare_passed,
        "follows_lecture": r.follows_lecture,
        "outcome": r.outcome,
        "largest_tolerance_ratio": r.largest_ratio,
        "explained_by": r.explained_by,
        "byte_differences": [d.as_dict() for d in r.byte_differences],
        "drift": {p.a: p.to_json() for p in r.drift},
        "first_divergence": _divergences_json(r.divergences),
        "error": r.error,
        "log_tail": r.log_tail if r.returncode else "",
    }


def _device_lines(r: DeviceRun) -> list[str]:
    """One device's section: do the backends agree (and follow the lecture), the outcome, what moved."""
    verdict = {True: "backends agree", False: "BACKENDS DIFFER", None: "BROKEN RUN"}[r.compare_passed]
    lecture = {True: " and follow the lecture", False: ", but not the lecture", None: ""}[r.follows_lecture]
    md = [f"## {r.device}: {verdict}{lecture if r.compare_passed else ''}", ""]
    if r.outcome is not None:
        md += _outcome_lines(r)
    if r.broken:
        md += [f"**Broken**: {r.error}", "", "```", r.log_tail.strip(), "```", ""]
    if r.drift:
        moved = [f"{p.a} {d.quantity}" for p in r.drift for d in p.differences if not d.passed]
        md += [f"Against the committed results: {'moved: ' + ', '.join(moved) if moved else 'no drift'}.", ""]
        md += [*_pairs_table(r.drift, "committed", "fresh"), "", *_divergence_lines(r.divergences)]
    return md


def title(specs: tuple[str, ...] | list[str]) -> str:
    return f" with {' '.join(specs)}" if specs else ""


def install_report(specs: tuple[str, ...], failed: InstallFailed) -> tuple[dict, str]:
    """(check.json, check.md) of a check --with whose venv could not be built or does not run: broken, with
    its line and the versions resolved, when it got that far."""
    upgrade = {"specs": list(specs), "changes": [c.to_json() for c in failed.changes], "error": failed.line}
    data = {"status": STATUS[EXIT_BROKEN], "exit_code": EXIT_BROKEN, "with": upgrade, "log_tail": failed.log}
    md = [f"# Reproducibility check{title(specs)}: {STATUS[EXIT_BROKEN]}", "", f"The install failed: {failed.line}", ""]
    md += _changes_table(failed.changes) if failed.changes else []
    return data, "\n".join([*md, "```", failed.log.strip(), "```"]) + "\n"


def check_run(
    code: int, specs: tuple[str, ...], changes: tuple[Change, ...], runs: Sequence[DeviceRun], reports: dict[str, str]
) -> CheckRun:
    """The MLflow run of a check --with: named by its specs and status; tagged with them, each changed
    version (`version.torch`: "2.13.0+cpu -> 2.15.0") and each device's outcome; its figures as metrics."""
    from adaline_repro.tracking.check_runs import CheckRun  # MLflow's import: only when a check logs

    tags = {"check.with": " ".join(specs), "check.status": STATUS[code]}
    tags |= {f"version.{c.name}": f"{c.locked or '-'} -> {c.now or '-'}" for c in changes}
    metrics = {"exit_code": float(code)}
    for r in runs:
        tags[f"check.{r.device}.outcome"] = r.outcome or "broken"
        if r.error:
            tags[f"check.{r.device}.error"] = r.error
        tags[f"check.{r.device}.backends_agree"] = str(r.compare_passed)
        if r.largest_ratio is not None:
            metrics[f"{r.device}.largest_tolerance_ratio"] = r.largest_ratio
        for backend, found in r.divergences.items():
            if found is not None:
                metrics[f"{r.device}.first_divergence_step.{backend}"] = float(found.step)
    return CheckRun(f"check{title(specs)}: {STATUS[code]}", tags, metrics, reports)


def _changes_table(changes: tuple[Change, ...]) -> list[str]:
    lines = ["| package | requirements.lock | this check |", "|---|---|---|"]
    return [*lines, *(f"| {c.name} | {c.locked or '-'} | {c.now or '-'} |" for c in changes), ""]


def _version_lines(upgrade: ScratchVenv) -> list[str]:
    """The packages whose versions differ from requirements.lock's."""
    lines = _changes_table(upgrade.changes)[:-1] if upgrade.changes else ["Every version is requirements.lock's."]
    if upgrade.released:
        lines += ["", f"Released from the lock (the new versions exclude its pins): {', '.join(upgrade.released)}."]
    return [*lines, "", f"Venv: `{upgrade.path}` ({'reused' if upgrade.reused else 'built by this check'}).", ""]


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
    if r.largest_ratio is not None:
        lines.append(f"The largest difference from the committed values is {r.largest_ratio:.3g} of its tolerance.")
    if r.outcome == WITHIN_TOLERANCE:
        lines.append("Expected, because: " + "; ".join(r.explained_by) + ". Every value is within tolerance.")
    elif r.explained_by:
        lines.append("Values moved beyond the tolerances although other bytes were expected: "
                     + "; ".join(r.explained_by) + ".")  # fmt: skip
    else:
        lines.append("Nothing explains them: same architecture, libraries and CPU pins as the committed results.")
    return [*lines, "", *(f"- {d}" for d in r.byte_differences), ""]

"""What a check --with says about its versions: the MLflow run's name and tags (each changed version, each
device's outcome, a broken one with its one line), and the report of an install that failed, with pip's line and
the versions resolved before it failed."""

from __future__ import annotations

from adaline_repro.core.errors import EXIT_BROKEN
from adaline_repro.ops.check_findings import DeviceRun
from adaline_repro.ops.check_report import check_run, install_report
from adaline_repro.ops.versions import Change, InstallFailed

CHANGES = (Change("torch", "2.13.0+cpu", "2.15.0"), Change("triton", None, "3.9.0"))


def test_the_run_is_tagged_with_each_changed_version_and_a_broken_device_says_so():
    error = "error: prepare: a feature is constant on the training rows; cannot standardize"
    broken = DeviceRun("cpu", EXIT_BROKEN, None, f"pipeline: running\n{error}\n\n")
    run = check_run(EXIT_BROKEN, ("latest",), CHANGES, [broken], {})
    assert run.tags["check.cpu.error"] == error
    assert (run.tags["version.torch"], run.tags["version.triton"]) == ("2.13.0+cpu -> 2.15.0", "- -> 3.9.0")
    assert (run.tags["check.with"], run.tags["check.cpu.outcome"]) == ("latest", "broken")
    assert (run.name, run.metrics) == ("check with latest: broken", {"exit_code": EXIT_BROKEN})


def test_an_install_that_failed_after_resolving_reports_its_line_and_the_versions():
    failed = InstallFailed("ERROR: THESE PACKAGES DO NOT MATCH THE HASHES", "pip's log", CHANGES)
    data, text = install_report(("torch==2.15.0",), failed)
    assert data["with"] == {
        "specs": ["torch==2.15.0"],
        "changes": [c.to_json() for c in CHANGES],
        "error": "ERROR: THESE PACKAGES DO NOT MATCH THE HASHES",
    }
    assert (data["status"], data["exit_code"]) == ("broken", EXIT_BROKEN)
    assert text.startswith("# Reproducibility check with torch==2.15.0: broken\n")
    assert "| torch | 2.13.0+cpu | 2.15.0 |" in text

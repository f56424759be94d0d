"""The GitHub workflow: valid against GitHub's schema, clean under zizmor, and running the check nightly."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import REPO

WORKFLOW = REPO / ".github" / "workflows" / "reproducibility.yml"
BIN = Path(sys.executable).parent


def test_workflow_matches_the_github_workflow_schema():
    done = subprocess.run(
        [BIN / "check-jsonschema", "--builtin-schema", "vendor.github-workflows", WORKFLOW],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_zizmor_finds_nothing_of_medium_severity_or_above():
    done = subprocess.run(
        [BIN / "zizmor", "--offline", "--min-severity", "medium", "--no-progress", WORKFLOW],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_triggers_permissions_and_pins():
    """Nightly, by hand, on pull requests and pushes to main; read-only; every action pinned to a commit."""
    flow = yaml.safe_load(WORKFLOW.read_text())
    triggers = flow.get("on", flow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert set(triggers) == {"schedule", "workflow_dispatch", "pull_request", "push"}
    assert triggers["push"]["branches"] == ["main"]
    assert triggers["schedule"][0]["cron"]
    assert flow["permissions"] == {"contents": "read"}
    uses = re.findall(r"uses:\s*(\S+)", WORKFLOW.read_text())
    assert uses
    assert all(re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", u) for u in uses), uses


def test_cpu_job_runs_the_check_and_keeps_the_reports():
    jobs = yaml.safe_load(WORKFLOW.read_text())["jobs"]
    cpu = jobs["cpu"]
    assert cpu["runs-on"] == "ubuntu-latest"
    assert any(step.get("run", "").startswith("./pipeline check") for step in cpu["steps"])
    upload = next(s for s in cpu["steps"] if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["if"] == "always()"
    assert upload["with"]["path"] == "reports/"
    setup = next(s for s in cpu["steps"] if s.get("uses", "").startswith("actions/setup-python@"))
    assert setup["with"]["cache"] == "pip"
    gpu = jobs["gpu"]
    assert "self-hosted" in gpu["runs-on"]
    assert "vars." in gpu["if"]
    assert any("--devices cpu,cuda" in step.get("run", "") for step in gpu["steps"])

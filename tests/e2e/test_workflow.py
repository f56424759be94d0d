"""The GitHub workflows: valid against GitHub's schema, clean under zizmor, hardened alike; the check and the
soak tier run nightly, the upgrade checks weekly, the tests on every push and pull request, each tier once."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

WORKFLOWS = REPO / ".github" / "workflows"
WORKFLOW = WORKFLOWS / "reproducibility.yml"
TESTS = WORKFLOWS / "tests.yml"
SOAK = WORKFLOWS / "soak.yml"
UPGRADES = WORKFLOWS / "upgrades.yml"
BIN = Path(sys.executable).parent
ALL = sorted(WORKFLOWS.glob("*.yml"))


def test_the_four_workflows_exist():
    assert [w.name for w in ALL] == ["reproducibility.yml", "soak.yml", "tests.yml", "upgrades.yml"]


@pytest.mark.parametrize("workflow", ALL, ids=lambda w: w.name)
def test_workflow_matches_the_github_workflow_schema(workflow):
    done = subprocess.run(
        [BIN / "check-jsonschema", "--builtin-schema", "vendor.github-workflows", workflow],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("workflow", ALL, ids=lambda w: w.name)
def test_zizmor_finds_nothing_of_medium_severity_or_above(workflow):
    done = subprocess.run(
        [BIN / "zizmor", "--offline", "--min-severity", "medium", "--no-progress", workflow],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("workflow", ALL, ids=lambda w: w.name)
def test_hardening_read_only_pinned_no_persisted_credentials(workflow):
    """Read-only token, every action pinned to a commit, and checkout never keeps its credentials."""
    text = workflow.read_text()
    flow = yaml.safe_load(text)
    assert flow["permissions"] == {"contents": "read"}
    uses = re.findall(r"uses:\s*(\S+)", text)
    assert all(re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", u) for u in uses), uses
    for job in flow["jobs"].values():
        for step in job["steps"]:
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False


def test_tests_workflow_runs_lint_then_each_tier_once_on_pushes_and_pull_requests():
    """The unit tier in the fast job, the end-to-end tier after it: nothing runs twice."""
    flow = yaml.safe_load(TESTS.read_text())
    triggers = flow.get("on", flow.get(True))
    assert {"pull_request", "push"} <= set(triggers)
    runs = {name: [s.get("run", "") for s in job["steps"]] for name, job in flow["jobs"].items()}
    assert "./pipeline lint" in runs["lint"]
    assert "./pipeline test --fast" in runs["fast"]
    assert "./pipeline test tests/e2e" in runs["full"]
    assert any("system-packages" in r for r in runs["full"])


def test_the_soak_tier_runs_nightly_and_by_hand():
    flow = yaml.safe_load(SOAK.read_text())
    assert set(flow.get("on", flow.get(True))) == {"schedule", "workflow_dispatch"}
    assert [s.get("run") for s in flow["jobs"]["soak"]["steps"]][-1] == "./pipeline test --soak"


def test_the_upgrade_checks_run_weekly_with_the_newest_torch_and_every_newest_release_keeping_their_reports():
    flow = yaml.safe_load(UPGRADES.read_text())
    triggers = flow.get("on", flow.get(True))
    assert set(triggers) == {"schedule", "workflow_dispatch"}
    assert triggers["schedule"][0]["cron"].split()[2:] == ["*", "*", "1"]  # once a week
    job = flow["jobs"]["check-with"]
    assert job["strategy"]["matrix"]["spec"] == ["torch", "latest"]
    [check] = [s for s in job["steps"] if "./pipeline check" in s.get("run", "")]
    assert check["run"] == './pipeline check --with "$SPEC"'
    assert check["env"]["SPEC"] == "${{ matrix.spec }}"  # through the environment, not the script's text
    upload = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert (upload["if"], upload["with"]["path"]) == ("always()", "reports/")
    assert "${{ matrix.spec }}" in upload["with"]["name"]  # one artifact per spec


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


def test_cpu_and_platform_jobs_run_the_check_and_keep_the_reports():
    jobs = yaml.safe_load(WORKFLOW.read_text())["jobs"]
    cpu = jobs["cpu"]
    assert cpu["runs-on"] == "ubuntu-latest"
    assert any(step.get("run", "").startswith("./pipeline check") for step in cpu["steps"])
    upload = next(s for s in cpu["steps"] if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["if"] == "always()"
    assert upload["with"]["path"] == "reports/"
    setup = next(s for s in cpu["steps"] if s.get("uses", "").startswith("actions/setup-python@"))
    assert setup["with"]["cache"] == "pip"
    platforms = jobs["platforms"]["strategy"]["matrix"]  # where users are: the lock's other cells
    assert platforms == {"os": ["macos-14", "ubuntu-24.04-arm"], "python": ["3.11", "3.12", "3.13"]}
    assert "PIP_EXTRA_INDEX_URL" not in WORKFLOW.read_text()  # ./pipeline adds PyTorch's index itself
    gpu = jobs["gpu"]
    assert "self-hosted" in gpu["runs-on"]
    assert "vars." in gpu["if"]
    assert any("--devices cpu,cuda" in step.get("run", "") for step in gpu["steps"])

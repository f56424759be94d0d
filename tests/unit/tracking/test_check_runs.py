"""A check --with verdict becomes one finished MLflow run in the checks' experiment, named by its specs and
status, tagged with them and with each changed version, its reports attached."""

from __future__ import annotations

import mlflow

from adaline_repro.core.errors import EXIT_BROKEN
from adaline_repro.ops.check_report import install_report
from adaline_repro.tracking import check_runs


def test_a_broken_install_is_logged_finished_with_its_specs_status_and_reports(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    data, text = install_report(["numpy==0.0.1"], "ERROR: No matching distribution found for numpy==0.0.1", "log")
    run_id = check_runs.log_check(uri, check_runs.experiment_name("adaline"), check_runs.check_run(data, text))
    run = mlflow.MlflowClient(uri).get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "check with numpy==0.0.1: broken"
    assert mlflow.MlflowClient(uri).get_experiment(run.info.experiment_id).name == "adaline-checks"
    assert (run.data.tags["check.with"], run.data.tags["check.status"]) == ("numpy==0.0.1", "broken")
    assert run.data.metrics == {"exit_code": EXIT_BROKEN}
    artifacts = {a.path for a in mlflow.MlflowClient(uri).list_artifacts(run_id)}
    assert artifacts == {"check.md", "check.json"}


def test_the_versions_a_check_changed_are_tags_locked_to_now():
    changes = [
        {"name": "torch", "locked": "2.13.0+cpu", "now": "2.15.0"},
        {"name": "triton", "locked": None, "now": "3.9.0"},
    ]
    data = {"status": "passed", "exit_code": 0, "with": {"specs": ["latest"], "changes": changes}}
    tags = check_runs.check_run(data, "").tags
    assert (tags["version.torch"], tags["version.triton"]) == ("2.13.0+cpu -> 2.15.0", "- -> 3.9.0")

"""A check's verdict becomes one finished MLflow run in the checks' experiment, with its name, tags, metrics
and reports as given."""

from __future__ import annotations

import mlflow

from adaline_repro.tracking import check_runs
from adaline_repro.tracking.check_runs import CheckRun


def test_a_check_is_logged_finished_in_the_checks_experiment_with_its_tags_metrics_and_reports(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    run = CheckRun("check with numpy==0.0.1: broken", {"check.with": "numpy==0.0.1", "version.numpy": "2.4.6 -> -"},
                   {"exit_code": 6.0}, {"check.md": "# broken\n", "check.json": "{}\n"})  # fmt: skip
    run_id = check_runs.log_check(uri, check_runs.experiment_name("adaline"), run)
    client = mlflow.MlflowClient(uri)
    logged = client.get_run(run_id)
    assert (logged.info.status, logged.info.run_name) == ("FINISHED", "check with numpy==0.0.1: broken")
    assert client.get_experiment(logged.info.experiment_id).name == "adaline-checks"
    assert {k: v for k, v in logged.data.tags.items() if not k.startswith(("mlflow.", "adaline."))} == run.tags
    assert logged.data.metrics == {"exit_code": 6.0}
    assert {a.path for a in client.list_artifacts(run_id)} == {"check.md", "check.json"}

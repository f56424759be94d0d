"""Writing an execution: one parent and a child per backend in a real SQLite store, every run tagged with the
checkout and process that logged it; no run left RUNNING on failure; a dataset race MLflow leaves open is
logged again, not failed."""

from __future__ import annotations

import mlflow
import pytest

from adaline_repro.core import processes
from adaline_repro.core.checkout import checkout_id
from adaline_repro.tracking import store as tracking
from adaline_repro.tracking.runs import Dataset, _dataset_input, log_execution, log_inputs
from adaline_repro.tracking.store import TrackingError
from tests.unit.tracking.conftest import execution as _execution


def test_parent_and_children_are_logged(tmp_path, uri):
    parent_id = log_execution(uri, _execution(tmp_path))
    client = mlflow.MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("exp").experiment_id])
    assert len(runs) == 4
    assert {r.info.status for r in runs} == {"FINISHED"}
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent_id]
    assert sorted(r.info.run_name for r in children) == ["autograd@cpu", "manual@cpu", "module@cpu"]
    params = [dict(r.data.params) for r in children]
    assert all(
        {k: v for k, v in p.items() if k != "backend"} == {"train.lr": "0.01", "train.epochs": "2"} for p in params
    )
    history = client.get_metric_history(children[0].info.run_id, "train_mse")
    assert [(m.step, m.value) for m in history] == [(1, 0.5), (2, 0.25)]
    parent = client.get_run(parent_id)
    assert parent.data.tags["compare.verdict"] == "passed"
    assert parent.data.tags["mlflow.note.content"] == "**Compare passed**"
    assert parent.data.params["train.backends"] == "manual,autograd,module"
    assert children[0].inputs.dataset_inputs[0].dataset.name == "iris-train"
    artifacts = [a.path for a in client.list_artifacts(children[0].info.run_id)]
    assert artifacts == ["curve.csv"]


def test_a_store_failure_midway_is_a_tracking_error_and_leaves_no_run_running(tmp_path, uri, monkeypatch):
    """The store refusing a write while the third backend is logged: TrackingError (exit 3), and the parent
    and that child end FAILED, none RUNNING."""
    original = mlflow.MlflowClient.log_text

    def refuse_module(self, run_id, text, name):
        if self.get_run(run_id).data.tags.get("backend") == "module":
            raise mlflow.exceptions.MlflowException("write refused")
        return original(self, run_id, text, name)

    monkeypatch.setattr(mlflow.MlflowClient, "log_text", refuse_module)
    with pytest.raises(TrackingError, match=r"tracking store sqlite:///.*: write refused"):
        log_execution(uri, _execution(tmp_path))
    client = mlflow.MlflowClient(uri)
    statuses = sorted(r.info.status for r in client.search_runs([client.get_experiment_by_name("exp").experiment_id]))
    assert "RUNNING" not in statuses
    assert statuses.count("FAILED") == 2  # the parent and the module child


def test_a_missing_local_file_is_not_blamed_on_the_store(tmp_path, uri):
    """A local artifact that is not there is our bug, not the store's: its own error propagates (the CLI
    prints its traceback), and the runs still end FAILED."""
    with pytest.raises(FileNotFoundError):
        log_execution(uri, _execution(tmp_path, artifact_missing=True))
    client = mlflow.MlflowClient(uri)
    statuses = sorted(r.info.status for r in client.search_runs([client.get_experiment_by_name("exp").experiment_id]))
    assert "RUNNING" not in statuses
    assert statuses.count("FAILED") == 2


@pytest.mark.parametrize("interruption", [KeyboardInterrupt, SystemExit])
def test_an_interrupted_logging_ends_its_runs_killed(tmp_path, uri, monkeypatch, interruption):
    """Ctrl-C (KeyboardInterrupt) or SIGTERM (SystemExit, from the CLI's handler) while the second backend
    run is being logged: every run of that execution ends KILLED, none RUNNING."""
    calls = {"n": 0}
    original = mlflow.MlflowClient.log_inputs

    def interrupted(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise interruption()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(mlflow.MlflowClient, "log_inputs", interrupted)
    with pytest.raises(interruption):
        log_execution(uri, _execution(tmp_path))
    client = mlflow.MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("exp").experiment_id])
    assert sorted(r.info.status for r in runs) == ["FINISHED", "KILLED", "KILLED"]  # manual done; 2 were open


def test_every_run_names_the_checkout_and_the_process_that_logged_it(tmp_path, uri):
    log_execution(uri, _execution(tmp_path))
    client = mlflow.MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("exp").experiment_id])
    assert {r.data.tags[tracking.CHECKOUT_TAG] for r in runs} == {checkout_id()}
    assert {r.data.tags[tracking.PROCESS_TAG] for r in runs} == {str(processes.current())}


def test_a_dataset_another_process_created_meanwhile_is_logged_again_not_failed(tmp_path, uri):
    """Two executions log the same data at once (queued experiments share the prepared data). The race
    MLflow leaves open, forced here on the real SQLite store through SQLAlchemy's event API: one logger looks
    the dataset up, finds none, and only inserts it after the other has created it. It logs its inputs again
    (and finds the row) instead of failing on the datasets table's key."""
    import threading

    import sqlalchemy

    log_execution(uri, _execution(tmp_path))  # the store and the experiment exist
    c = tracking.client(uri)
    experiment = c.get_experiment_by_name("exp").experiment_id
    first, second = (c.create_run(experiment).info.run_id for _ in range(2))
    data = tmp_path / "train.csv"
    inputs = [_dataset_input(Dataset("iris-new", data, "fresh1", "training"))]
    looked_up, created = threading.Event(), threading.Event()
    waiting = threading.get_ident()  # the thread held between its look-up and its insert

    def hold_after_the_look_up(conn, cursor, statement, *args) -> None:
        if (
            threading.get_ident() == waiting
            and statement.lstrip().startswith("SELECT")
            and "FROM datasets" in statement
        ):
            looked_up.set()
            assert created.wait(30)

    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "after_cursor_execute", hold_after_the_look_up)
    try:
        other = threading.Thread(target=lambda: (looked_up.wait(30), log_inputs(c, second, inputs),
                                                 created.set()))  # fmt: skip
        other.start()
        log_inputs(c, first, inputs)
        other.join(30)
    finally:
        sqlalchemy.event.remove(sqlalchemy.engine.Engine, "after_cursor_execute", hold_after_the_look_up)
    assert created.is_set()
    for run_id in (first, second):
        assert [d.dataset.name for d in c.get_run(run_id).inputs.dataset_inputs] == ["iris-new"]

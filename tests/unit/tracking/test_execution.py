"""What the track stage logs: every parameter of params.yaml except the documented ones, git.dirty saying
whether code or configuration differ from the commit (the pipeline's own outputs do not count), and each
execution once per store."""

from __future__ import annotations

import subprocess

import pytest
import yaml
from msgspec.structs import replace

from adaline_repro.comparison import Report
from adaline_repro.core.files import read_json
from adaline_repro.core.results import ExecutionInputs
from adaline_repro.tracking import execution
from adaline_repro.tracking.execution import flat_params, source_tags
from adaline_repro.tracking.store import ROLE_TAG
from tests.conftest import PATHS, REPO, stored_runs

LOCK = """schema: '2.0'
stages:
  train@manual:
    cmd: ./pipeline train
    outs:
    - path: models/manual.json
      md5: 0
  evaluate:
    cmd: ./pipeline evaluate
    outs:
    - path: predictions
      md5: 0.dir
"""


@pytest.fixture
def repo(tmp_path, monkeypatch):
    files = {
        "dvc.lock": LOCK,
        "params.yaml": "train:\n  lr: 0.01\n",
        "src/code.py": "x = 1\n",
        "models/manual.json": "{}\n",
        "predictions/manual.csv": "row,prediction\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@localhost", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([*git, "add", "-A"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "c"], cwd=tmp_path, check=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_rewritten_outputs_and_lock_leave_a_run_clean(repo):
    """A retrain rewrites models, predictions and dvc.lock; the code and params are still the commit's."""
    (repo / "models" / "manual.json").write_text('{"bias": 0.5}\n')
    (repo / "predictions" / "manual.csv").write_text("row,prediction\n1,1\n")
    (repo / "dvc.lock").write_text(LOCK + "# rewritten\n")
    assert source_tags(repo)["git.dirty"] == "false"


@pytest.mark.parametrize("changed", ["src/code.py", "params.yaml"])
def test_changed_code_or_configuration_makes_a_run_dirty(repo, changed):
    (repo / changed).write_text((repo / changed).read_text() + "# edited\n")
    assert source_tags(repo)["git.dirty"] == "true"


def test_logged_params_are_exactly_params_yaml_less_what_is_documented(params):
    """Every key of params.yaml is logged, with its value as written, except `tracking` (where it is logged),
    `compare` (the verdict's tolerances, not the execution's) and train.backends (each run names its own)."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    expected = {
        f"{section}.{key}": ",".join(value) if isinstance(value, list) else str(value)
        for section, values in raw.items()
        if section not in ("tracking", "compare")
        for key, value in values.items()
        if (section, key) != ("train", "backends")
    }
    assert flat_params(params) == expected


def test_an_execution_the_store_holds_is_not_logged_again_from_another_branch(tmp_path, monkeypatch, params, data_dir):
    """Back on main after an experiment, the marker is the experiment's, yet the store already has main's
    execution (same code, params and outputs): it is found by its id and not logged a second time. Other
    params are another execution."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(REPO)  # the code is the checkout's (the track stage runs at its root)
    dirs = PATHS.results(REPO)  # the committed outputs
    inputs = ExecutionInputs(data_dir / "raw.csv", data_dir / "train.csv", data_dir / "test.csv", REPO / PATHS.figure)
    report, marker = Report.from_json(read_json(REPO / PATHS.compare_json)), tmp_path / "logged.json"

    def parents() -> list[str]:
        return [r.info.run_id for r in stored_runs(uri) if r.data.tags.get(ROLE_TAG) == "execution"]

    first = execution.log_and_say(params, dirs, inputs, report, marker)
    assert first.startswith("track: logged run ")
    assert parents() == [first.split()[3]]
    marker.write_text("{}")  # the experiment's marker
    assert execution.log_and_say(params, dirs, inputs, report, marker) == (
        f"track: {uri} already holds this execution (compare passed)"
    )
    assert parents() == [first.split()[3]]
    other = replace(params, train=replace(params.train, lr=0.02))
    assert execution.log_and_say(other, dirs, inputs, report, marker).startswith("track: logged run ")
    assert len(parents()) == 2

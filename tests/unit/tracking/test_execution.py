"""What the track stage logs: every parameter of params.yaml except the documented ones, and git.dirty saying
whether code or configuration differ from the commit (the pipeline's own outputs do not count)."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from adaline_repro.tracking.execution import flat_params, source_tags
from tests.conftest import REPO

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

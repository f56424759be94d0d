"""End to end: the real pipeline (DVC + MLflow) in a fresh git copy of the project."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

from .conftest import REPO

pytestmark = pytest.mark.e2e


def _run(args: list[str], cwd: Path, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if check and done.returncode != 0:
        raise AssertionError(f"{args} exited {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done


@contextlib.contextmanager
def _edited(path: Path, old: str, new: str) -> Iterator[None]:
    """The file with `old` replaced by `new` for the duration of the block."""
    original = path.read_text()
    assert old in original
    path.write_text(original.replace(old, new))
    try:
        yield
    finally:
        path.write_text(original)


def _runs(uri: str) -> list:
    client = mlflow.MlflowClient(uri)
    experiments = client.search_experiments()
    return client.search_runs([e.experiment_id for e in experiments]) if experiments else []


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    """What a fresh clone has: the files git would hold, committed in a new repository; nothing else."""
    root = tmp_path_factory.mktemp("clone")
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    store = tmp_path_factory.mktemp("store")
    env = {
        **os.environ,
        "ADALINE_VENV": str(REPO / ".venv"),  # reuse the environment instead of building a second one
        "MLFLOW_TRACKING_URI": f"sqlite:///{store}/mlflow.db",
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }
    env.pop("DVC_ROOT", None)
    for args in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "config", "user.name", "t"],  # dvc exp commits experiment refs with the repository's identity
        ["git", "config", "user.email", "t@example.invalid"],
        ["git", "add", "-A"],
        ["git", "commit", "-q", "-m", "clone"],
    ):
        _run(args, root, env)
    return root, env


@pytest.fixture(scope="module")
def first_repro(clone):
    root, env = clone
    committed_lock = (root / "dvc.lock").read_text()
    done = _run(["./pipeline", "repro"], root, env)
    return root, env, committed_lock, done


def test_fresh_clone_reproduces_the_committed_lock(first_repro):
    """Outputs are deterministic: the committed dvc.lock comes out byte for byte."""
    root, _, committed_lock, done = first_repro
    assert (root / "dvc.lock").read_text() == committed_lock, done.stdout
    assert "Running stage 'train@manual'" in done.stdout


def test_every_backend_reports_the_lecture_accuracies(first_repro):
    root = first_repro[0]
    for backend in ("manual", "autograd", "module"):
        metrics = json.loads((root / "metrics" / f"{backend}.json").read_text())
        assert round(metrics["train_accuracy"], 4) == 0.9286
        assert round(metrics["test_accuracy"], 4) == 0.9333
    report = json.loads((root / "reports" / "compare.json").read_text())
    assert report["passed"] is True


def test_the_store_holds_one_execution(first_repro):
    """A parent with the verdict and three finished backend runs with 20 epochs each, even though the
    committed outputs made DVC skip evaluate and compare."""
    _, env, _, _ = first_repro
    runs = _runs(env["MLFLOW_TRACKING_URI"])
    assert len(runs) == 4
    assert {r.info.status for r in runs} == {"FINISHED"}
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    assert parent.data.tags["compare.verdict"] == "passed"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.info.run_name for r in children) == ["autograd@cpu", "manual@cpu", "module@cpu"]
    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    for child in children:
        history = client.get_metric_history(child.info.run_id, "train_mse")
        assert [m.step for m in history] == list(range(1, 21))
        assert round(child.data.metrics["test_accuracy"], 4) == 0.9333
        assert child.data.tags["torch.version"].startswith("2.13.0")
        assert len(child.data.tags["mlflow.source.git.commit"]) == 40
        assert child.data.tags["git.dirty"] == "false"
    assert len({frozenset((k, v) for k, v in c.data.params.items() if k != "backend") for c in children}) == 1


def test_second_repro_runs_nothing_and_logs_nothing(first_repro):
    root, env, _, _ = first_repro
    before = len(_runs(env["MLFLOW_TRACKING_URI"]))
    done = _run(["./pipeline", "repro"], root, env)
    assert "Running stage" not in done.stdout
    assert len(_runs(env["MLFLOW_TRACKING_URI"])) == before


def test_invalid_parameter_is_one_line_and_logs_nothing(first_repro):
    root, env, _, _ = first_repro
    before = len(_runs(env["MLFLOW_TRACKING_URI"]))
    with _edited(root / "params.yaml", "  lr: 0.01", "  lr: -0.01"):
        done = _run(["./pipeline", "repro"], root, env, check=False)
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: params.yaml: train.lr: Input should be greater than 0 (got -0.01)"]
    assert "Traceback" not in done.stderr
    assert len(_runs(env["MLFLOW_TRACKING_URI"])) == before


def test_a_new_store_gets_the_execution_without_retraining(first_repro, tmp_path):
    """Pointing MLFLOW_TRACKING_URI elsewhere makes the next repro log there; nothing else runs."""
    root, env, _, _ = first_repro
    other = {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/other.db"}
    done = _run(["./pipeline", "repro"], root, other)
    assert "Running stage 'track'" in done.stdout
    assert "Running stage 'train" not in done.stdout
    assert len(_runs(other["MLFLOW_TRACKING_URI"])) == 4


def test_experiment_with_a_changed_learning_rate(first_repro):
    """`dvc exp run -S` works, `dvc exp show` lists accuracies, metrics and plots render."""
    root, env, _, _ = first_repro
    before = len(_runs(env["MLFLOW_TRACKING_URI"]))
    _run(
        ["dvc", "exp", "run", "-n", "lr-005", "-S", "train.lr=0.05"],
        root,
        {**env, "PATH": f"{REPO}/.venv/bin:{env['PATH']}"},
    )
    runs = _runs(env["MLFLOW_TRACKING_URI"])
    assert len(runs) == before + 4
    assert {r.data.tags.get("dvc.exp_name") for r in runs[:4]} == {"lr-005"}
    assert {r.data.params.get("train.lr") for r in runs[:4]} == {"0.05"}
    venv_env = {**env, "PATH": f"{REPO}/.venv/bin:{env['PATH']}"}
    shown = _run(["dvc", "exp", "show", "--csv"], root, venv_env).stdout
    assert "train_accuracy" in shown
    assert "lr-005" in shown
    metrics = _run(["dvc", "metrics", "show"], root, venv_env).stdout
    assert "metrics/manual.json" in metrics
    assert "test_accuracy" in metrics
    _run(["dvc", "plots", "show", "-o", "plots_html"], root, venv_env)
    html = (root / "plots_html" / "index.html").read_text()
    assert all(f"plots/loss/{b}.csv" in html for b in ("manual", "autograd", "module"))


def test_a_backend_that_differs_fails_compare_and_is_still_logged(first_repro):
    """With zero_grad() removed from the module backend, `dvc repro` fails at compare, and the store
    holds the execution with the failed verdict for inspection, every run finished."""
    root, env, _, _ = first_repro
    module = root / "src" / "adaline_repro" / "backends" / "module.py"
    before = {r.info.run_id for r in _runs(env["MLFLOW_TRACKING_URI"])}
    with _edited(module, "        self.optimizer.zero_grad()\n", ""):
        done = _run(["./pipeline", "repro"], root, env, check=False)
    assert done.returncode != 0
    assert "failed to reproduce 'compare'" in done.stderr
    assert "FAILED: the backends differ" in done.stdout
    report = json.loads((root / "reports" / "compare.json").read_text())
    assert report["passed"] is False
    assert report["pairs"]["manual~autograd"]["passed"] is True
    new = [r for r in _runs(env["MLFLOW_TRACKING_URI"]) if r.info.run_id not in before]
    assert len(new) == 4
    assert {r.info.status for r in new} == {"FINISHED"}
    parent = next(r for r in new if "mlflow.parentRunId" not in r.data.tags)
    assert parent.data.tags["compare.verdict"] == "failed"
    assert parent.data.metrics["compare_passed"] == 0.0
    assert parent.data.metrics["compare_max_abs_diff_train_mse"] > 1e-2

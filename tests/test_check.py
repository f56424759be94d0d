"""`./pipeline check`: an unchanged repository passes; drift, staleness and impossible requests are told
apart by exit code and named in the report."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from adaline_repro import check, evaluate, train
from adaline_repro.layout import ResultDirs
from adaline_repro.params import load_params, replace

from .conftest import REPO, make_clone, run_cmd

pytestmark = pytest.mark.e2e


def _check(root, env, *args):
    done = run_cmd(["./pipeline", "check", *args], root, env, check=False)
    report = json.loads((root / "reports" / "check.json").read_text()) if (root / "reports/check.json").exists() else {}
    return done, report


def test_result_paths_are_the_ones_dvc_yaml_uses():
    """check reads the committed results where the compare stage reads them."""
    cmd = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["compare"]["cmd"]
    for flag in ("models", "curves", "predictions", "metrics"):
        folder = str(getattr(check.RESULTS, flag))
        assert re.search(rf"--{flag} {re.escape(folder)}(\s|$)", cmd)


def test_unchanged_repository_passes(tmp_path_factory):
    root, env = make_clone(tmp_path_factory)
    done, report = _check(root, env)
    assert done.returncode == check.EXIT_PASS, done.stdout + done.stderr
    assert report["status"] == "passed"
    assert report["devices"]["cpu"]["compare_passed"] is True
    assert report["dvc_lock_identical"] == {"cpu": True}  # every stage forced, every hash the same
    assert report["environment"]["differences"] == []
    assert "# Reproducibility check: passed" in (root / "reports" / "check.md").read_text()
    assert not (root / "mlflow.db").exists()  # the user's store is left alone


def test_a_committed_curve_moved_at_epoch_7_is_drift(tmp_path_factory):
    """A committed loss value off by 1e-4 at epoch 7 is reported as drift of that backend, from epoch 7."""
    root, env = make_clone(tmp_path_factory)
    curve = root / "plots" / "loss" / "autograd.csv"
    lines = curve.read_text().splitlines()
    epoch, value = lines[7].split(",")
    assert epoch == "7"
    lines[7] = f"7,{float(value) + 1e-4:.8f}"
    curve.write_text("\n".join(lines) + "\n")
    done, report = _check(root, env)
    assert done.returncode == check.EXIT_DRIFT, done.stdout + done.stderr
    drift = report["devices"]["cpu"]["drift"]
    assert drift["autograd"]["train_mse"]["passed"] is False
    assert drift["autograd"]["train_mse"]["first_failure"] == "epoch 7"
    assert abs(drift["autograd"]["train_mse"]["first_failure_diff"] - 1e-4) < 1e-6
    assert drift["manual"]["train_mse"]["passed"] is True
    assert "moved: autograd train_mse" in (root / "reports" / "check.md").read_text()


def test_results_from_a_learning_rate_off_by_a_tenth_of_a_percent_are_drift(tmp_path_factory):
    """Committed results made with lr x 1.001 (say, by another torch) no longer match a fresh run."""
    root, env = make_clone(tmp_path_factory)
    params = load_params(root / "params.yaml")
    shifted = replace(params.train, lr=params.train.lr * 1.001)
    run_cmd(["./pipeline", "repro", "prepare"], root, env)  # the prepared data the stages use
    prepared = root / "data" / "prepared"
    dirs = ResultDirs.under(root)
    train.run(prepared / "train.csv", dirs, shifted)
    evaluate.run(dirs, params.train.backends, prepared / "train.csv", prepared / "test.csv", params.evaluate)
    done, report = _check(root, env)
    assert done.returncode == check.EXIT_DRIFT, done.stdout + done.stderr
    drift = report["devices"]["cpu"]["drift"]
    assert all(drift[b]["train_mse"]["passed"] is False for b in params.train.backends)
    assert all(drift[b]["weights"]["passed"] is False for b in params.train.backends)


def test_changed_parameter_without_updated_lock_is_stale(tmp_path_factory):
    root, env = make_clone(tmp_path_factory)
    params = root / "params.yaml"
    params.write_text(params.read_text().replace("  epochs: 20", "  epochs: 21"))
    done, report = _check(root, env)
    assert done.returncode == check.EXIT_STALE, done.stdout + done.stderr
    assert report["status"] == "stale"
    assert "train: params.yaml train.epochs modified" in report["stale"]
    assert "dvc.lock is stale" in done.stdout
    assert report["devices"] == {}  # nothing was run


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the error shown when no GPU is present")
def test_cuda_without_a_gpu_is_a_clear_error(tmp_path_factory):
    root, env = make_clone(tmp_path_factory)
    done = run_cmd(["./pipeline", "check", "--devices", "cpu,cuda"], root, env, check=False)
    assert done.returncode == check.EXIT_INPUT
    assert done.stderr.strip() == "error: check: --devices asks for cuda, but no CUDA device is available"

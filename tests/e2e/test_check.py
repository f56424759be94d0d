"""`./pipeline check` end to end, in fresh clones: identical bytes pass; drift names the file and value; an
explained difference within tolerance passes; staleness and impossible requests are told apart by exit code."""

from __future__ import annotations

import json

import numpy as np
import pytest

from adaline_repro.backends import BACKENDS
from adaline_repro.errors import EXIT_DRIFT, EXIT_INPUT, EXIT_OK, EXIT_STALE
from adaline_repro.ops import check
from adaline_repro.params import load_params, replace
from adaline_repro.stages import evaluate, train
from tests.conftest import PATHS, make_clone, run_cmd


def _check(root, env, *args):
    done = run_cmd(["./pipeline", "check", *args], root, env, check=False)
    report = json.loads((root / "reports" / "check.json").read_text()) if (root / "reports/check.json").exists() else {}
    return done, report


def _nudge_committed_bias(root, backend: str) -> tuple[str, str]:
    """The committed model's bias moved by one float32 ULP (well within tolerance); (old, new) as written."""
    model = root / "models" / f"{backend}.json"
    data = json.loads(model.read_text())
    old = data["bias"]
    new = float(np.nextafter(np.float32(old), np.float32(np.inf)))
    text = model.read_text()
    assert text.count(f'"bias": {old!r}') == 1
    model.write_text(text.replace(f'"bias": {old!r}', f'"bias": {np.float32(new)!s}'))
    return str(np.float32(new)), repr(old)


def test_unchanged_repository_passes_with_identical_bytes(tmp_path_factory):
    """A forced re-run from scratch gives every committed byte again, on whatever x86-64 CPU this is."""
    root, env = make_clone(tmp_path_factory)
    done, report = _check(root, env)
    assert done.returncode == EXIT_OK, done.stdout + done.stderr
    assert report["status"] == "passed"
    assert report["devices"]["cpu"]["compare_passed"] is True
    assert report["devices"]["cpu"]["outcome"] == check.IDENTICAL
    assert report["devices"]["cpu"]["byte_differences"] == []
    assert report["dvc_lock_identical"] == {"cpu": True}  # every stage forced, every hash the same
    text = (root / "reports" / "check.md").read_text()
    assert "# Reproducibility check: passed" in text
    assert "**Identical**" in text
    assert not (root / "mlflow.db").exists()  # the user's store is left alone


def test_one_ulp_that_nothing_explains_is_drift_naming_the_file_and_value(tmp_path_factory):
    """On the same architecture, libraries and pins, a byte difference is a finding, however small."""
    root, env = make_clone(tmp_path_factory)
    committed, fresh = _nudge_committed_bias(root, "autograd")
    done, report = _check(root, env)
    assert done.returncode == EXIT_DRIFT, done.stdout + done.stderr
    cpu = report["devices"]["cpu"]
    assert cpu["outcome"] == check.DRIFT
    assert cpu["explained_by"] == []
    assert cpu["byte_differences"] == [
        {"file": "models/autograd.json", "where": "key bias", "committed": committed, "fresh": fresh}
    ]
    assert all(q["passed"] for q in cpu["drift"]["autograd"].values())  # within tolerance all the same
    assert f"models/autograd.json: key bias: committed {committed}, fresh {fresh}" in done.stdout


def test_one_ulp_under_another_torch_is_within_tolerance(tmp_path_factory):
    """Results committed under another torch may differ in the last bits: within tolerance, and said why."""
    root, env = make_clone(tmp_path_factory)
    _nudge_committed_bias(root, "module")
    reference = root / "reports" / "environment.json"
    data = json.loads(reference.read_text())
    now_torch, data["torch"] = data["torch"], "2.12.0+cpu"
    reference.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    done, report = _check(root, env)
    assert done.returncode == EXIT_OK, done.stdout + done.stderr
    cpu = report["devices"]["cpu"]
    assert cpu["outcome"] == check.WITHIN_TOLERANCE
    assert cpu["explained_by"] == [f"torch: 2.12.0+cpu -> {now_torch}"]
    assert [d["file"] for d in cpu["byte_differences"]] == ["models/module.json"]


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
    assert done.returncode == EXIT_DRIFT, done.stdout + done.stderr
    drift = report["devices"]["cpu"]["drift"]
    assert drift["autograd"]["train_mse"]["passed"] is False
    assert drift["autograd"]["train_mse"]["first_failure"] == "epoch 7"
    assert abs(drift["autograd"]["train_mse"]["first_failure_diff"] - 1e-4) < 1e-6
    assert drift["manual"]["train_mse"]["passed"] is True
    assert "moved: autograd train_mse" in (root / "reports" / "check.md").read_text()


def test_results_from_a_learning_rate_off_by_a_tenth_of_a_percent_are_drift(tmp_path_factory):
    """Committed results made with lr x 1.001 (say, by another torch) no longer match a fresh run, and the
    drift report says from which update step and names the learning rate."""
    root, env = make_clone(tmp_path_factory)
    params = load_params(root / "params.yaml")
    shifted = replace(params.train, lr=params.train.lr * 1.001)
    run_cmd(["./pipeline", "repro", "prepare"], root, env)  # the prepared data the stages use
    prepared = root / "data" / "prepared"
    dirs = PATHS.results(root)
    for backend in params.train.backends:
        outputs = (dirs.model(backend), dirs.curve(backend), dirs.step(backend))
        train.run(backend, prepared / "train.csv", *outputs, shifted)
    evaluate.run(dirs, params.train.backends, prepared / "train.csv", prepared / "test.csv", params.evaluate)
    done, report = _check(root, env)
    assert done.returncode == EXIT_DRIFT, done.stdout + done.stderr
    drift = report["devices"]["cpu"]["drift"]
    assert all(drift[b]["train_mse"]["passed"] is False for b in params.train.backends)
    assert all(drift[b]["weights"]["passed"] is False for b in params.train.backends)
    # The locator compare uses says from which step and why, committed against fresh, for each backend.
    for backend in params.train.backends:
        found = report["devices"]["cpu"]["first_divergence"][backend]
        assert found["step"] == 1
        assert [(c["rule"], c["backend"]) for c in found["likely_cause"]] == [("learning_rate", None)]
        assert "fresh's learning rate is 0.999001 x committed's" in found["likely_cause"][0]["evidence"]
    check_md = (root / "reports" / "check.md").read_text()
    assert (
        "- manual: first divergence at step 1 (epoch 1, batch 1); likely cause: committed or fresh: learning "
        in check_md
    )


def test_changed_parameter_without_updated_lock_is_stale(tmp_path_factory):
    root, env = make_clone(tmp_path_factory)
    params = root / "params.yaml"
    params.write_text(params.read_text().replace("  epochs: 20", "  epochs: 21"))
    done, report = _check(root, env)
    assert done.returncode == EXIT_STALE, done.stdout + done.stderr
    assert report["status"] == "stale"
    assert {f"train@{b}: params.yaml train.epochs modified" for b in BACKENDS} <= set(report["stale"])
    assert "dvc.lock is stale" in done.stdout
    assert report["devices"] == {}  # nothing was run


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the error shown when no GPU is present")
def test_cuda_without_a_gpu_is_a_clear_error(tmp_path_factory):
    root, env = make_clone(tmp_path_factory)
    done = run_cmd(["./pipeline", "check", "--devices", "cpu,cuda"], root, env, check=False)
    assert done.returncode == EXIT_INPUT
    assert done.stderr.strip() == "error: check: --devices asks for cuda, but no CUDA device is available"

"""Compare: float32 rounding between backends passes; a missing zero_grad, one swapped
shuffle position, a learning rate off by 0.1 % or one epoch fewer in one backend fails, with its reports."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from msgspec.structs import replace

from adaline_repro.comparison import BackendOutputs, Divergence, compare, figure, load_outputs
from adaline_repro.core.files import json_text, read_json
from adaline_repro.core.params import CompareParams, load_params
from adaline_repro.stages import evaluate
from adaline_repro.stages.train import shuffle_orders, train, write_result
from tests.conftest import PATHS, REPO, pairs_with, stored_runs


def _outputs(tmp_path, name, result, data_dir, train_table, params) -> BackendOutputs:
    """Write a training result (as backend `name`) the way the stages do, then read it back as compare does."""
    dirs = PATHS.results(tmp_path)
    files = (dirs.model(name), dirs.curve(name), dirs.step(name))
    write_result(dataclasses.replace(result, backend=name), train_table.features, *files)
    evaluate.write_outputs(dirs, (name,), data_dir / "train.csv", data_dir / "test.csv", params.evaluate)
    return BackendOutputs(**{**load_outputs(name, dirs).__dict__, "backend": result.backend})


@pytest.fixture
def reference(tmp_path, data_dir, train_table, params):
    """The manual backend with the defaults: the side every faulty run is compared against."""
    return _outputs(tmp_path, "reference", train("manual", train_table, params.train), data_dir, train_table, params)


def test_default_backends_agree(tmp_path, data_dir, train_table, params):
    """With the defaults the three backends pass, their differences being float32 rounding (< 1e-7)."""
    outs = [
        _outputs(tmp_path, b, train(b, train_table, params.train), data_dir, train_table, params)
        for b in params.train.backends
    ]
    report = compare(outs, params.compare)
    assert report.passed, report.markdown(params.compare)
    assert report.divergence is None
    assert report.largest("steps") < 1e-7
    assert 0 < report.largest("train_mse") < 1e-7
    assert report.largest("weights") < 1e-7
    assert report.largest("predictions") == 0


def test_missing_zero_grad_fails(tmp_path, monkeypatch, reference, data_dir, train_table, params):
    """The module backend with gradients accumulating across steps is caught."""
    monkeypatch.setattr(torch.optim.SGD, "zero_grad", lambda self, set_to_none=True: None)
    faulty = _outputs(tmp_path, "module", train("module", train_table, params.train), data_dir, train_table, params)
    report = compare([reference, faulty], params.compare)
    assert not report.passed
    assert report.largest("train_mse") > 1e-2


def test_one_swapped_shuffle_position_fails(tmp_path, reference, data_dir, train_table, params):
    """Swapping two rows across minibatches in one epoch's order is caught."""
    orders = shuffle_orders(70, params.train.epochs, params.train.seed)
    order = orders[10].clone()
    order[0], order[69] = orders[10][69], orders[10][0]
    orders[10] = order
    result = train("autograd", train_table, params.train, orders=orders)
    faulty = _outputs(tmp_path, "autograd", result, data_dir, train_table, params)
    report = compare([reference, faulty], params.compare)
    assert not report.passed
    diff = next(d for d in report.pairs[0].differences if d.quantity == "train_mse")
    assert diff.at.startswith("epoch ")
    assert int(diff.at.split()[1]) >= 11


@pytest.mark.parametrize("factor", [1.001, 0.999])
def test_learning_rate_off_by_a_tenth_of_a_percent_fails(tmp_path, factor, reference, data_dir, train_table, params):
    result = train("module", train_table, replace(params.train, lr=params.train.lr * factor))
    faulty = _outputs(tmp_path, "module", result, data_dir, train_table, params)
    report = compare([reference, faulty], params.compare)
    assert not report.passed
    assert not next(d for d in report.pairs[0].differences if d.quantity == "train_mse").passed


def test_nan_is_never_equal_to_nan(reference):
    """Two runs that both diverged do not agree."""
    broken = BackendOutputs(**{**reference.__dict__, "curve": np.full_like(reference.curve, math.nan)})
    other = BackendOutputs(**{**broken.__dict__, "backend": "other"})
    report = compare([broken, other], CompareParams(atol=1.0, rtol=1.0))
    assert not report.passed
    assert report.largest("train_mse") is None


def test_one_flipped_prediction_fails_whatever_the_tolerance(reference):
    """A difference made after training: predictions differ, no update step does, and the line says so."""
    rows = list(reference.predictions)
    split, row, pred = rows[3]
    rows[3] = (split, row, 1 - pred)
    flipped = BackendOutputs(**{**reference.__dict__, "backend": "flipped", "predictions": tuple(rows)})
    report = compare([reference, flipped], CompareParams(atol=1.0, rtol=1.0))
    assert not report.passed
    assert report.largest("predictions") == 1
    assert report.divergence is None
    assert report.failure_line() == (
        "the backends differ in predictions; no update step diverges: the parameters agree after every update"
    )


def _compare_stage(tmp_path, params_yaml, data_dir, uri: str) -> subprocess.CompletedProcess:
    """The compare stage's own process on the results in tmp_path, as dvc.yaml runs it."""
    dirs = PATHS.results(tmp_path)
    args = ["--params", params_yaml, "--models", dirs.models, "--curves", dirs.curves]
    args += ["--predictions", dirs.predictions, "--metrics", dirs.metrics, "--steps", dirs.steps]
    args += ["--report-json", tmp_path / "r.json", "--report-md", tmp_path / "r.md", "--verdict", tmp_path / "v.json"]
    args += ["--loss-plot", tmp_path / "loss.csv", "--diff-plot", tmp_path / "diff.csv"]
    args += ["--raw", data_dir / "raw.csv", "--train", data_dir / "train.csv", "--test", data_dir / "test.csv"]
    args += ["--figure", tmp_path / "figure.png", "--marker", tmp_path / ".tracking" / "logged.json"]
    env = {"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin", "MLFLOW_TRACKING_URI": uri}
    return subprocess.run(
        [sys.executable, "-m", "adaline_repro.stages.compare", *map(str, args)],
        capture_output=True, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip


def test_a_backend_that_trained_one_epoch_fewer_fails_compare_with_its_reports_and_figure(
    tmp_path, data_dir, train_table, params
):
    """It crashed compare with exit 70 in the figure (matplotlib's `x and y must have same first dimension`),
    losing the verdict and the reports."""
    params_yaml = tmp_path / "params.yaml"
    params_yaml.write_text((REPO / "params.yaml").read_text())
    for b in params.train.backends:
        p = replace(params.train, epochs=params.train.epochs - 1) if b == "module" else params.train
        _outputs(tmp_path, b, train(b, train_table, p), data_dir, train_table, params)
    done = _compare_stage(tmp_path, params_yaml, data_dir, f"sqlite:///{tmp_path}/mlflow.db")
    assert done.returncode == 1, done.stderr
    report = read_json(tmp_path / "r.json")
    assert report["passed"] is False
    assert [c["rule"] for c in report["first_divergence"]["likely_cause"]] == ["length"]
    assert read_json(tmp_path / "v.json")["agree"] is False
    assert (tmp_path / "figure.png").read_bytes().startswith(b"\x89PNG")
    assert "module,0.1" in (tmp_path / "loss.csv").read_text()


def test_a_learning_rate_every_backend_shares_fails_compare_against_the_lecture(
    tmp_path, data_dir, train_table, params
):
    """All three trained at lr 0.02 while params.yaml says 0.01: they agree at every step, and compare exits 1
    all the same, naming step 1 and the cause for all of them, with its reports and its figure."""
    params_yaml = tmp_path / "params.yaml"
    params_yaml.write_text((REPO / "params.yaml").read_text())
    doubled = replace(params.train, lr=2 * params.train.lr)
    for b in params.train.backends:
        _outputs(tmp_path, b, train(b, train_table, doubled), data_dir, train_table, params)
    done = _compare_stage(tmp_path, params_yaml, data_dir, f"sqlite:///{tmp_path}/mlflow.db")
    assert done.returncode == 1, done.stderr
    report = read_json(tmp_path / "r.json")
    assert (report["passed"], report["follows_lecture"]) == (False, False)
    assert all(pair["passed"] for pair in report["pairs"].values())
    (cause,) = report["first_divergence"]["likely_cause"]
    assert (report["first_divergence"]["step"], cause["rule"], cause["backend"]) == (1, "learning_rate", None)
    assert cause["shared"] == list(params.train.backends)
    assert "compare: FAILED: the backends agree with each other, not with the lecture's update; " in done.stdout
    assert (tmp_path / "figure.png").read_bytes().startswith(b"\x89PNG")


def test_compare_command_fails_after_logging_the_execution(tmp_path, data_dir, train_table, params):
    """The stage writes passed=false, prints the table, logs the execution (dvc repro will not reach the
    track stage) and exits 1; run again on the same results it does not log a second copy. Where and why
    the backends part reaches the reports, its last line, the parent run's tags and description, and the
    figure (a marker at the first diverging step). The lecture's three backends, whichever others are
    registered: the sentence names them."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["train"]["backends"] = ["manual", "autograd", "module"]
    params_yaml = tmp_path / "params.yaml"
    params_yaml.write_text(yaml.safe_dump(raw))
    params = load_params(params_yaml)
    dirs = PATHS.results(tmp_path)
    for b in params.train.backends:
        p = replace(params.train, lr=0.01001) if b == "module" else params.train
        _outputs(tmp_path, b, train(b, train_table, p), data_dir, train_table, params)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    runs = []
    for _ in range(2):
        done = _compare_stage(tmp_path, params_yaml, data_dir, uri)
        assert done.returncode == 1, done.stderr
        runs.append(stored_runs(uri))
    report = read_json(tmp_path / "r.json")
    assert report["passed"] is False
    assert report["pairs"]["manual~autograd"]["passed"] is True
    assert report["pairs"]["manual~module"]["train_mse"]["passed"] is False
    assert "FAILED: the backends differ" in done.stdout
    assert "| manual ~ module | train_mse |" in done.stdout
    assert "already holds this execution" in done.stdout
    assert len(runs[0]) == len(runs[1]) == 1 + len(params.train.backends)  # the parent and one per backend
    parent = next(r for r in runs[0] if "mlflow.parentRunId" not in r.data.tags)
    assert parent.data.tags["compare.verdict"] == "failed"
    assert {r.info.status for r in runs[0]} == {"FINISHED"}
    found = report["first_divergence"]
    assert (found["step"], found["epoch"], found["batch"]) == (1, 1, 1)
    assert found["apart"] == pairs_with("module", params.train.backends)
    (cause,) = found["likely_cause"]
    assert (cause["rule"], cause["backend"]) == ("learning_rate", "module")
    assert found["update_ratios"]["manual~module"] == pytest.approx([1.001] * 3, rel=1e-4)
    line = (
        "at step 1 (epoch 1, batch 1), module's update is 1.001 x manual's and autograd's in every parameter; "
        "likely cause: module: learning rate off by a factor."
    )
    assert done.stdout.splitlines()[-1] == f"compare: FAILED: the backends differ in train_mse, weights, steps; {line}"
    assert (tmp_path / "r.md").read_text().startswith(f"# Backend comparison\n\n{line[0].upper()}{line[1:]}\n\n")
    assert parent.data.tags["mlflow.note.content"].startswith(f"{line[0].upper()}{line[1:]}\n\n**Compare FAILED")
    assert "## First divergence" in (tmp_path / "r.md").read_text()
    assert parent.data.tags["compare.first_divergence"] == "step 1 (epoch 1, batch 1)"
    assert parent.data.tags["compare.likely_cause"] == "module: learning rate off by a factor"
    note = parent.data.tags["mlflow.note.content"]
    assert "module's learning rate is 1.001 x the configured one; this reproduces" in note
    drawn = (tmp_path / "figure.png").read_bytes()
    figure.draw(params.train.backends, dirs.curves, tmp_path / "plain.png")
    assert drawn.startswith(b"\x89PNG")
    assert drawn != (tmp_path / "plain.png").read_bytes()
    figure.draw(params.train.backends, dirs.curves, tmp_path / "again.png", Divergence.from_json(found))
    assert drawn == (tmp_path / "again.png").read_bytes()


def test_compare_json_holds_no_tolerances(tmp_path, data_dir, train_table, params):
    """Tolerances that keep the verdict leave reports/compare.json byte for byte the same (so the track
    stage, which depends on it, does not re-run); the markdown report states them."""
    outs = [
        _outputs(tmp_path, b, train(b, train_table, params.train), data_dir, train_table, params)
        for b in params.train.backends
    ]
    loose = compare(outs, CompareParams(atol=1e-6, rtol=1e-6))
    strict = compare(outs, params.compare)
    assert json_text(loose.to_json()) == json_text(strict.to_json())
    assert "atol=1e-06" in loose.markdown(CompareParams(atol=1e-6, rtol=1e-6))
    assert "atol=1e-07" in strict.markdown(params.compare)

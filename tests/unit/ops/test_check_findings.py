"""The check's verdict on a fresh run: identical bytes pass; other bytes pass only when the device or the
environment explains them and every value is within tolerance; anything else is drift."""

from __future__ import annotations

from adaline_repro.comparison.agreement import Difference, PairResult
from adaline_repro.ops import check, check_findings, check_report
from adaline_repro.ops.byte_diff import FirstDifference
from adaline_repro.ops.fingerprint import Difference as EnvDifference

_MOVED = FirstDifference("models/manual.json", "key bias", "0.5", "0.50000006")


def _pair(passed: bool) -> PairResult:
    return PairResult("manual", "manual", (Difference("weights", 6e-8, 1e-7, "bias", passed),))


def test_the_same_bytes_are_identical_whatever_else_differs():
    assert check_findings.outcome([], ["torch: 2.12.0 -> 2.13.0"], [_pair(False)]) == check_findings.IDENTICAL


def test_other_bytes_explained_and_within_tolerance_are_within_tolerance():
    assert (
        check_findings.outcome([_MOVED], ["torch: 2.12.0 -> 2.13.0"], [_pair(True)]) == check_findings.WITHIN_TOLERANCE
    )


def test_other_bytes_that_nothing_explains_are_drift_even_within_tolerance():
    assert check_findings.outcome([_MOVED], [], [_pair(True)]) == check_findings.DRIFT


def test_explained_bytes_beyond_the_tolerance_are_drift():
    assert check_findings.outcome([_MOVED], ["torch: 2.12.0 -> 2.13.0"], [_pair(False)]) == check_findings.DRIFT


def test_another_device_or_a_byte_relevant_environment_difference_explains_bytes():
    """cuda against committed cpu results explains; a CPU model does not; a torch version does."""
    diffs = [EnvDifference("cpu.model", "AMD EPYC", "Intel Xeon"), EnvDifference("torch", "2.12.0", "2.13.0")]
    assert check_findings.explanations("cuda", "cpu", diffs) == [
        "device: committed results from cpu, this run on cuda",
        "torch: 2.12.0 -> 2.13.0",
    ]
    assert check_findings.explanations("cpu", "cpu", diffs[:1]) == []


def test_the_versions_check_with_changed_explain_bytes():
    assert check_findings.explanations("cpu", "cpu", [], ["pandas: 3.1.1 -> 3.0.6"]) == [
        "--with pandas: 3.1.1 -> 3.0.6"
    ]


# --- judging a fresh run against the committed results, on real result files ------------------------------
# `./pipeline check` gives the committed bytes again (tests/e2e/test_check.py pins that on a real forced run),
# so the committed files serve as the fresh run here and a changed copy as what was committed.


def _judged(tmp_path, params, change, env_diffs=(), train=None, versions=()):
    """check_findings.judge on the repository's committed results (the fresh run) against a copy that `change`
    edits (what was committed); (the device run, its check.md text)."""
    import shutil

    from adaline_repro.core.checkout import pipeline_paths
    from tests.conftest import REPO

    paths = pipeline_paths(REPO)
    committed, fresh = tmp_path / "committed", tmp_path / "fresh"
    for root in (committed, fresh):
        for rel in check_findings.compared_paths(paths):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (shutil.copytree if (REPO / rel).is_dir() else shutil.copy2)(REPO / rel, root / rel)
    change(committed)
    run = check_findings.DeviceRun(
        "cpu", 0, True, "", fresh, train=train, results=check.load_results(fresh, paths, params.train.backends)
    )
    reference = check.load_results(committed, paths, params.train.backends)
    check_findings.judge(committed, run, reference, list(env_diffs), params, paths, versions)
    _, text = check_report.report(check_findings.exit_code([run], []), [], [run], [], {}, None, {})
    return run, text


def _nudge_bias(root, backend):
    """The model's bias moved by one float32 ULP (well within tolerance); (as written now, as before)."""
    import json

    import numpy as np

    model = root / "models" / f"{backend}.json"
    old = json.loads(model.read_text())["bias"]
    new = np.float32(np.nextafter(np.float32(old), np.float32(np.inf)))
    text = model.read_text()
    assert text.count(f'"bias": {old!r}') == 1
    model.write_text(text.replace(f'"bias": {old!r}', f'"bias": {new!s}'))
    return str(new), repr(old)


def test_one_ulp_that_nothing_explains_is_drift_naming_the_file_and_value(tmp_path, params):
    """On the same architecture, libraries and pins, a byte difference is a finding, however small."""
    written = {}
    run, text = _judged(tmp_path, params, lambda root: written.update(ulp=_nudge_bias(root, "autograd")))
    committed, fresh = written["ulp"]
    assert run.outcome == check_findings.DRIFT
    assert run.explained_by == []
    assert [d.as_dict() for d in run.byte_differences] == [
        {"file": "models/autograd.json", "where": "key bias", "committed": committed, "fresh": fresh}
    ]
    assert all(d.passed for p in run.drift for d in p.differences)  # within tolerance all the same
    assert f"models/autograd.json: key bias: committed {committed}, fresh {fresh}" in text


def test_one_ulp_under_another_torch_is_within_tolerance_and_says_why(tmp_path, params):
    """Results committed under another torch may differ in the last bits: within tolerance, and said why."""
    torch_moved = EnvDifference("torch", "2.12.0+cpu", "2.13.0+cpu")
    run, _ = _judged(tmp_path, params, lambda root: _nudge_bias(root, "module"), [torch_moved])
    assert run.outcome == check_findings.WITHIN_TOLERANCE
    assert run.explained_by == ["torch: 2.12.0+cpu -> 2.13.0+cpu"]
    assert [d.file for d in run.byte_differences] == ["models/module.json"]


def test_one_ulp_under_a_version_check_with_changed_is_within_tolerance_by_how_much(tmp_path, params):
    """A package --with changed explains other bytes as a fingerprint difference does; the report says how
    far the values moved in units of their tolerance (one float32 ULP of the bias: a fraction of it)."""
    run, text = _judged(tmp_path, params, lambda root: _nudge_bias(root, "module"), versions=["pandas: 3.1.1 -> 3.0.6"])
    assert run.outcome == check_findings.WITHIN_TOLERANCE
    assert run.explained_by == ["--with pandas: 3.1.1 -> 3.0.6"]
    assert 0 < run.largest_ratio < 1
    assert f"The largest difference from the committed values is {run.largest_ratio:.3g} of its tolerance." in text


def test_a_committed_curve_moved_at_epoch_7_is_drift_of_that_backend_from_epoch_7(tmp_path, params):
    def move(root):
        curve = root / "plots" / "loss" / "autograd.csv"
        lines = curve.read_text().splitlines()
        epoch, value = lines[7].split(",")
        assert epoch == "7"
        lines[7] = f"7,{float(value) + 1e-4:.8f}"
        curve.write_text("\n".join(lines) + "\n")

    run, text = _judged(tmp_path, params, move)
    drift = {p.a: {d.quantity: d for d in p.differences} for p in run.drift}
    assert run.outcome == check_findings.DRIFT
    assert drift["autograd"]["train_mse"].passed is False
    assert drift["autograd"]["train_mse"].first_failure == "epoch 7"
    assert abs(drift["autograd"]["train_mse"].first_failure_diff - 1e-4) < 1e-6
    assert drift["manual"]["train_mse"].passed is True
    assert "moved: autograd train_mse" in text


def test_results_from_a_learning_rate_off_by_a_tenth_of_a_percent_are_drift_located_at_step_1(
    tmp_path, params, data_dir
):
    """Committed results made with lr x 1.001 (say, by another torch) no longer match a fresh run, and the
    drift report says from which update step and names the learning rate."""
    from msgspec.structs import replace

    from adaline_repro.core.checkout import pipeline_paths
    from adaline_repro.stages import evaluate, train
    from tests.conftest import REPO

    shifted = replace(params.train, lr=params.train.lr * 1.001)

    def retrain(root):
        dirs = pipeline_paths(REPO).results(root)
        for backend in params.train.backends:
            train.write_outputs(backend, data_dir / "train.csv", dirs.model(backend), dirs.curve(backend),
                                dirs.step(backend), shifted)  # fmt: skip
        evaluate.write_outputs(
            dirs, params.train.backends, data_dir / "train.csv", data_dir / "test.csv", params.evaluate
        )

    run, text = _judged(tmp_path, params, retrain, train=data_dir / "train.csv")
    drift = {p.a: {d.quantity: d for d in p.differences} for p in run.drift}
    assert run.outcome == check_findings.DRIFT
    assert all(not drift[b]["train_mse"].passed and not drift[b]["weights"].passed for b in params.train.backends)
    for backend in params.train.backends:  # the locator compare uses, committed against fresh
        found = run.divergences[backend]
        assert found.step == 1
        # the lecture's update replayed on the training table reproduces the fresh record, not the committed
        assert [(c.rule, c.backend) for c in found.causes] == [("learning_rate", "committed")]
        assert found.causes[0].evidence.startswith("committed's learning rate is 1.001 x the configured one")
    assert "- manual: first divergence at step 1 (epoch 1, batch 1); likely cause: committed: learning " in text
    assert run.largest_ratio > 1

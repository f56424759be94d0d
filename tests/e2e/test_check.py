"""`./pipeline check` end to end, in fresh clones: a forced run from scratch gives the committed bytes again;
staleness and impossible requests are told apart by exit code. How a fresh run is judged against changed
committed results (drift, explained bytes, the located step) is pinned on real files in
tests/unit/ops/test_check_findings.py."""

from __future__ import annotations

import json

import pytest

from adaline_repro.backends import BACKENDS
from adaline_repro.core.errors import EXIT_INPUT, EXIT_OK, EXIT_STALE
from adaline_repro.ops import check_findings
from tests.conftest import make_clone, run_cmd


def _check(root, env, *args):
    done = run_cmd(["./pipeline", "check", *args], root, env, check=False)
    report = json.loads((root / "reports" / "check.json").read_text()) if (root / "reports/check.json").exists() else {}
    return done, report


def test_unchanged_repository_passes_with_identical_bytes(tmp_path_factory):
    """A forced re-run from scratch gives every committed byte again, on whatever x86-64 CPU this is."""
    root, env = make_clone(tmp_path_factory)
    done, report = _check(root, env)
    assert done.returncode == EXIT_OK, done.stdout + done.stderr
    assert report["status"] == "passed"
    assert report["devices"]["cpu"]["compare_passed"] is True
    assert report["devices"]["cpu"]["outcome"] == check_findings.IDENTICAL
    assert report["devices"]["cpu"]["byte_differences"] == []
    assert report["dvc_lock_identical"] == {"cpu": True}  # every stage forced, every hash the same
    text = (root / "reports" / "check.md").read_text()
    assert "# Reproducibility check: passed" in text
    assert "**Identical**" in text
    assert not (root / "mlflow.db").exists()  # the user's store is left alone


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

"""What a stage hands back to the run that started DVC: a real stage command notes that it started and, when
it ends, its exit code, under the name DVC runs it by; nothing is noted when no run asked for it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from adaline_repro.core import run_env
from adaline_repro.core.errors import EXIT_INPUT, EXIT_OK
from tests.conftest import REPO


def _stage(args: list[str], env: dict[str, str], cwd) -> subprocess.CompletedProcess:
    """A stage as `./pipeline stage` starts it: its own program."""
    full = {**os.environ, "PYTHONPATH": str(REPO / "src"), **env}
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=full, capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def test_a_stage_notes_its_exit_code_under_dvc_s_name_for_it(tmp_path):
    folder = tmp_path / "outcomes"
    folder.mkdir()
    env = {run_env.OUTCOMES: str(folder), "DVC_STAGE": "fetch"}
    done = _stage(["adaline_repro.stages.fetch", "--params", str(REPO / "params.yaml"), "--out", "raw.csv"], env,
                  tmp_path)  # fmt: skip
    assert done.returncode == EXIT_OK, done.stderr
    refused = _stage(["adaline_repro.stages.train", "--params", str(REPO / "params.yaml"), "--backend", "manual",
                      "--train", "missing.csv", "--model", "m", "--curve", "c", "--steps", "s"],
                     {**env, "DVC_STAGE": "train@manual"}, tmp_path)  # fmt: skip
    assert refused.returncode == EXIT_INPUT
    assert [(o.stage, o.exit_code) for o in run_env.outcomes(folder)] == [("fetch", 0), ("train@manual", 2)]


def test_a_stage_killed_before_it_ended_is_noted_as_started_only(tmp_path, monkeypatch):
    monkeypatch.setenv(run_env.OUTCOMES, str(tmp_path))
    monkeypatch.setenv("DVC_STAGE", "train@module")
    run_env.started()
    (found,) = run_env.outcomes(tmp_path)
    assert (found.stage, found.exit_code) == ("train@module", None)
    run_env.ended(143)
    assert json.loads((tmp_path / "train@module.json").read_text())["exit_code"] == 143


@pytest.mark.parametrize("missing", [run_env.OUTCOMES, "DVC_STAGE"])
def test_nothing_is_noted_unless_a_run_asked_for_it_and_dvc_named_the_stage(tmp_path, monkeypatch, missing):
    monkeypatch.setenv(run_env.OUTCOMES, str(tmp_path))
    monkeypatch.setenv("DVC_STAGE", "fetch")
    monkeypatch.delenv(missing)
    run_env.started()
    run_env.ended(0)
    assert list(tmp_path.iterdir()) == []

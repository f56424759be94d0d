"""Bad input, end to end through `./pipeline repro`: one line naming the problem, a non-zero exit, every
output and dvc.lock as they were, and no MLflow run created or left RUNNING.

Each case edits params.yaml (and may write a bad data file or set an environment variable) in a fresh
clone that has run once; the clone is put back after each case.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from bench.sweep import queue_status

from tests.conftest import free_port, output_hashes, run_cmd, stored_runs
from tests.e2e.conftest import copy_of

IRIS = """5.1,3.5,1.4,0.2,Iris-setosa
7.0,3.2,4.7,1.4,Iris-versicolor
6.3,3.3,6.0,2.5,Iris-virginica
"""  # three well-formed rows, to build bad files from (150 are expected)


def _uci_file(root: Path) -> str:
    """The bundled Iris table in UCI's format (what `fetch.source: path` reads): 150 good rows."""
    raw = (root / "data" / "raw" / "iris.csv").read_text().splitlines()[1:]
    names = {"setosa": "Iris-setosa", "versicolor": "Iris-versicolor", "virginica": "Iris-virginica"}
    return "".join(",".join([*r.split(",")[:4], names[r.split(",")[4]]]) + "\n" for r in raw)


@dataclass(frozen=True)
class Case:
    id: str
    edits: tuple[tuple[str, str], ...] = ()  # params.yaml text replacements
    data: Callable[[str], str] | None = None  # good UCI text -> the bad source file (fetch.source: path)
    env: dict[str, str] = field(default_factory=dict)
    code: int = 2
    message: str = ""  # the `error: ` line, exactly; {data} is the bad file's path, {port} a closed port


def _rows(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def _replace_row(n: int, row: str) -> Callable[[str], str]:
    return lambda text: "".join(row if i == n else r for i, r in enumerate(_rows(text), start=1))


CASES = [
    # --- params.yaml: refused before DVC starts. One bad value and one unreadable file: every message of
    # params.py is pinned by tests/unit/core/test_params.py; what only this tier shows is that nothing runs.
    Case("lr negative", (("lr: 0.01", "lr: -0.01"),),
         message="error: params.yaml: train.lr: must be greater than 0 (got -0.01)"),
    Case("YAML syntax", (("backends: [manual, autograd, module]", "backends: [manual, autograd"),),
         message="error: params.yaml: YAML syntax error at line 12, column 13: this flow sequence is not closed "
         "(did not find expected ',' or ']' at line 13, column 9)"),
    # --- data: found by a stage, rolled back
    Case("checksum mismatch", data=lambda text: text, env={"CASE_SHA": "wrong"},
         message="error: {data}: sha256 mismatch: expected fetch.sha256="
         "abababababababababababababababababababababababababababababababab, got {sha}"),
    Case("truncated file", data=lambda text: "".join(_rows(text)[:120]),
         message="error: {data}: expected 150 rows, found 120"),
    Case("missing column", data=_replace_row(37, "5.5,3.5,1.3,Iris-setosa\n"),
         message="error: {data}: line 37: expected 5 columns, found 4"),
    Case("non-numeric value", data=_replace_row(61, "5.0,two,3.5,1.0,Iris-versicolor\n"),
         message="error: {data}: line 61: sepal_width is not a number ('two')"),
    Case("NaN value", data=_replace_row(102, "5.8,2.7,nan,1.9,Iris-virginica\n"),
         message="error: {data}: line 102: petal_length is not finite ('nan')"),
    Case("unknown species", data=_replace_row(150, "5.9,3.0,5.1,1.8,Iris-germanica\n"),
         message="error: {data}: line 150: unknown species 'Iris-germanica'"),
    Case("too few training rows", (("test_fraction: 0.3", "test_fraction: 0.995"),),
         message="error: 100 rows leave 0 for training and 100 for testing"),
    # --- training
    Case("batch larger than the training set", (("batch_size: 10", "batch_size: 71"),),
         message="error: train.batch_size=71 exceeds the 70 training rows"),
    Case("diverging learning rate", (("lr: 0.01", "lr: 1.0e+6"),),
         message="error: manual: diverged at epoch 1 (train_mse=nan)"),
    Case("cuda without a GPU", (("device: cpu", "device: cuda"),),
         message="error: train.device is 'cuda' but no CUDA device is available (use 'cpu' or 'auto')"),
    # --- environment
    Case("tracking server unreachable", env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:{port}"}, code=3,
         message="error: tracking store http://127.0.0.1:{port} is unreachable ([Errno 111] Connection refused); "
         "start it (./pipeline server) or unset MLFLOW_TRACKING_URI to log to the embedded store"),
]  # fmt: skip


@pytest.fixture(scope="module")
def clone(first_repro, tmp_path_factory):
    """A clone that has run once, shared by this module's tests: each puts back what it changes."""
    return copy_of(first_repro, tmp_path_factory.mktemp("bad-inputs"))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_and_changes_nothing(clone, tmp_path, case):
    root, env = clone
    before, runs_before = output_hashes(root), {r.info.run_id for r in stored_runs(env["MLFLOW_TRACKING_URI"])}
    params = root / "params.yaml"
    text = params.read_text()
    for old, new in case.edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    fields = {"port": str(free_port())}
    if case.data is not None:
        bad = tmp_path / "iris.data"
        bad.write_text(case.data(_uci_file(root)))
        sha = hashlib.sha256(bad.read_bytes()).hexdigest()
        fields.update(data=str(bad), sha=sha)
        declared = "ab" * 32 if case.env.get("CASE_SHA") == "wrong" else sha
        text = re.sub(r"source: sklearn", "source: path", text)
        text = re.sub(r'location: ""', f'location: "{bad}"', text)
        text = re.sub(r"sha256: [0-9a-f]{64}", f"sha256: {declared}", text)
    params.write_text(text)
    extra_env = {k: v.format(**fields) for k, v in case.env.items() if k != "CASE_SHA"}
    try:
        done = run_cmd(["./pipeline", "repro"], root, {**env, **extra_env}, check=False)
    finally:
        run_cmd(["git", "checkout", "--", "params.yaml"], root, env)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [case.message.format(**fields)], done.stdout + done.stderr
    assert done.returncode == case.code, done.stderr
    assert output_hashes(root) == before, "an output or dvc.lock changed"
    runs = stored_runs(env["MLFLOW_TRACKING_URI"])
    assert {r.info.run_id for r in runs} == runs_before, "a run was created"
    assert "RUNNING" not in {r.info.status for r in runs}


@pytest.mark.parametrize("form", [[], ["--queue"], ["--temp"]], ids=["workspace", "queue", "temp"])
def test_a_refused_set_param_through_dvc_exp_run_is_one_line_and_dvc_never_starts(clone, form):
    """Before, DVC wrote -1 into params.yaml, deleted train@manual's outputs and exited 255."""
    root, env = clone
    before, params = output_hashes(root), (root / "params.yaml").read_bytes()
    done = run_cmd(["./pipeline", "dvc", "exp", "run", *form, "-S", "train.lr=-1"], root, env, check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.strip() == (
        "error: -S train.lr=-1: params.yaml: train.lr: must be greater than 0 (got -1.0); nothing was run or changed"
    )
    assert output_hashes(root) == before
    assert (root / "params.yaml").read_bytes() == params
    assert run_cmd(["./pipeline", "dvc", "queue", "status"], root, env).stdout.count("Queued") == 0


DIVERGES = ("train.lr=1e6", "error: manual: diverged at epoch 1 (train_mse=nan)")  # valid, but training fails


def test_a_failing_workspace_experiment_puts_params_and_outputs_back(clone):
    """Before, a failed `exp run` left params.yaml with the -S value and the stage's outputs deleted."""
    root, env = clone
    before, params = output_hashes(root), (root / "params.yaml").read_bytes()
    done = run_cmd(["./pipeline", "dvc", "exp", "run", "-S", DIVERGES[0]], root, env, check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    assert [line for line in done.stderr.splitlines() if line.startswith("error: ")] == [DIVERGES[1]]
    assert output_hashes(root) == before
    assert (root / "params.yaml").read_bytes() == params
    assert "RUNNING" not in {r.info.status for r in stored_runs(env["MLFLOW_TRACKING_URI"])}


def test_a_failed_queued_experiment_says_why_in_queue_status_and_logs(clone):
    root, env = clone
    before = output_hashes(root)
    run_cmd(["./pipeline", "dvc", "exp", "run", "--queue", "-n", "diverges", "-S", DIVERGES[0]], root, env)
    run_cmd(["./pipeline", "dvc", "queue", "start", "-j", "1"], root, env)
    deadline = time.monotonic() + 240
    while queue_status(root).get("diverges") not in ("Success", "Failed"):
        assert time.monotonic() < deadline, queue_status(root)
        time.sleep(1)
    status = run_cmd(["./pipeline", "dvc", "queue", "status"], root, env).stdout
    assert f"Failed diverges: {DIVERGES[1]}" in status.splitlines(), status
    assert DIVERGES[1] in run_cmd(["./pipeline", "dvc", "queue", "logs", "diverges"], root, env).stdout.splitlines()
    run_cmd(["./pipeline", "dvc", "queue", "remove", "diverges"], root, env)
    assert output_hashes(root) == before

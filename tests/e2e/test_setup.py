"""Set-up as a new user meets it (the `pipeline` script): pip with no configuration finds no +cpu torch, so
./pipeline adds PyTorch's CPU index by itself, here a simple index on loopback holding the wheel pip finds where
this machine configures it; the fresh clone's forced run then reproduces the committed results byte for byte."""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from adaline_repro.ops.scratch import copy_worktree, tracked_files
from tests.conftest import OUTPUT_FOLDERS, REPO, VENV, run_cmd


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """pip asks this index for every package (404 for all but torch): not worth a line each."""


@pytest.fixture(scope="module")
def torch_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PEP 503 simple index on 127.0.0.1 holding the lock's +cpu torch, as PyTorch's CPU index does: the wheel
    from where pip is configured to look, else from PyTorch's index (ADALINE_TORCH_INDEX, set by ./pipeline)."""
    pin = re.search(r"^(torch==\S+\+cpu) ;", (REPO / "requirements.lock").read_text(), re.MULTILINE).group(1)
    folder = tmp_path_factory.mktemp("torch-index")
    project = folder / "torch"
    download = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "--dest",
                str(project), pin]  # fmt: skip
    if subprocess.run(download, capture_output=True).returncode:  # not where pip looks (a hosted runner)
        subprocess.run([*download, "--extra-index-url", os.environ["ADALINE_TORCH_INDEX"]], check=True)
    (wheel,) = project.glob("*.whl")
    sha256 = hashlib.sha256(wheel.read_bytes()).hexdigest()
    (project / "index.html").write_text(f'<a href="{wheel.name}#sha256={sha256}">{wheel.name}</a>\n')
    handler = functools.partial(_Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()


def test_a_fresh_clone_with_pip_unconfigured_takes_torch_from_the_cpu_index_and_reproduces(torch_index, tmp_path):
    root = copy_worktree(REPO, tmp_path / "clone")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PIP_", "ADALINE_", "DVC_ROOT"))}
    env |= {
        "PIP_CONFIG_FILE": os.devnull,  # no pip configuration at all: PyPI alone, as on a new machine
        "ADALINE_TORCH_INDEX": torch_index,
        "PYTHON": str(Path(sys.base_prefix) / "bin" / "python3"),  # the interpreter a user has, not our venv's
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db",
    }
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if not p.startswith(str(VENV)))
    forced = run_cmd(["./pipeline", "repro", "--force"], root, env)
    assert f"adding PyTorch's CPU index ({torch_index})" in forced.stderr
    assert "evaluate: train accuracy 0.9286, test accuracy 0.9333 (manual, autograd, module)" in forced.stdout
    installed = run_cmd([str(root / ".venv/bin/python"), "-c", "import torch; print(torch.__version__)"], root, env)
    assert installed.stdout.strip().endswith("+cpu")
    status = run_cmd(["./pipeline", "dvc", "status"], root, env)
    assert "up to date" in status.stdout
    results = [name for name in tracked_files(REPO) if name.split("/")[0] in OUTPUT_FOLDERS or name == "dvc.lock"]
    assert len(results) > 20
    for name in results:  # the committed bytes: models, curves, metrics, reports and dvc.lock
        assert (root / name).read_bytes() == (REPO / name).read_bytes(), name

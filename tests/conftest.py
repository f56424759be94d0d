"""Shared fixtures: the repository's own params and the lecture's prepared data, built once per session."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from adaline_repro.core.checkout import pipeline_paths
from adaline_repro.core.params import Params, load_params
from adaline_repro.core.results import Table, read_table
from adaline_repro.ops.scratch import copy_worktree
from adaline_repro.stages import fetch, prepare

REPO = Path(__file__).resolve().parents[1]
# The venv running the tests (./pipeline test's, or ADALINE_VENV's): clones and commands use it, never a
# `.venv` of their own, which a clone (or a copy of one, for a test inside a test) does not have.
VENV = Path(sys.prefix)
PATHS = pipeline_paths(REPO)  # dvc.yaml's paths, their one home
# The browser tests drive Debian's Chromium (Playwright never downloads one).
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The folder is the tier: tests/e2e/ runs real DVC, MLflow, PostgreSQL and Chromium (`-m e2e`)."""
    for item in items:
        if "e2e" in item.path.relative_to(REPO).parts[:2]:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def params() -> Params:
    return load_params(REPO / "params.yaml")


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory, params: Params) -> Path:
    """raw.csv, train.csv, test.csv and scaler.json made by the real fetch and prepare code."""
    out = tmp_path_factory.mktemp("data")
    (out / "raw.csv").write_text(fetch.fetch(params.fetch), encoding="utf-8")
    prepare.write_outputs(out / "raw.csv", out / "train.csv", out / "test.csv", out / "scaler.json", params.prepare)
    return out


@pytest.fixture(scope="session")
def train_table(data_dir: Path) -> Table:
    return read_table(data_dir / "train.csv")


@pytest.fixture(scope="session")
def test_table(data_dir: Path) -> Table:
    return read_table(data_dir / "test.csv")


# --- fresh clones of the project, for the end-to-end tests ---------------------------------


def run_cmd(args: list[str], cwd: Path, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command to completion; with check, a failure shows its whole output."""
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if check and done.returncode != 0:
        raise AssertionError(f"{args} exited {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done


@contextlib.contextmanager
def edited(path: Path, old: str, new: str) -> Iterator[None]:
    """The file with `old` replaced by `new` for the duration of the block."""
    original = path.read_text()
    assert old in original
    path.write_text(original.replace(old, new))
    try:
        yield
    finally:
        path.write_text(original)


# The top-level folders of every path dvc.yaml names (its `paths`, their one home): data, models, plots,
# predictions, metrics, steps, reports, .tracking.
OUTPUT_FOLDERS = tuple(sorted({Path(path).parts[0] for path in dataclasses.asdict(PATHS).values()}))


def output_hashes(root: Path) -> dict[str, str]:
    """Every pipeline output, the tracking marker and dvc.lock, by content hash: to assert nothing changed."""
    files = [p for f in OUTPUT_FOLDERS for p in (root / f).rglob("*") if p.is_file()] + [root / "dvc.lock"]
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(files)}


def stored_runs(uri: str) -> list:
    """Every run in every experiment of the store, newest first."""
    import mlflow  # seconds to import: only the tests that read a store pay for it

    client = mlflow.MlflowClient(uri)
    experiments = client.search_experiments()
    return client.search_runs([e.experiment_id for e in experiments]) if experiments else []


def make_clone(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """What a fresh clone has: the files git would hold, committed in a new repository; nothing else.

    Returns the clone's root and an environment whose MLFLOW_TRACKING_URI is a store of its own.
    """
    root = copy_worktree(REPO, tmp_path_factory.mktemp("clone"))
    store = tmp_path_factory.mktemp("store")
    env = {
        **os.environ,
        "ADALINE_VENV": str(VENV),  # reuse the environment instead of building a second one
        "MLFLOW_TRACKING_URI": f"sqlite:///{store}/mlflow.db",
        "DVC_NO_ANALYTICS": "1",
    }
    env.pop("DVC_ROOT", None)
    return root, env


# --- servers and background commands ----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class Background:
    """A long-running command as a user starts it (`./pipeline ui`, `./pipeline server`), its output
    collected line by line, in a process group of its own so Ctrl-C reaches all of it."""

    def __init__(self, args: list[str], cwd: Path, env: dict) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            args, cwd=cwd, env=env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, prefix: str, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = [line for line in self.lines if line.startswith(prefix)]
            if found:
                return found[0]
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"no line starting {prefix!r}; output so far:\n" + "\n".join(self.lines))

    def interrupt(self) -> int:
        """Ctrl-C, as the terminal sends it: SIGINT to the foreground process group."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)  # never leave it behind, even when the test fails
            raise


# --- what a queue of experiments must leave in a store -------------------------------------------


def assert_each_experiment_logged_once(uri: str, names: list[str], backends: tuple[str, ...], epochs: int) -> None:
    """Each named DVC experiment: one parent and one run per backend, all FINISHED, every epoch's
    train_mse logged once (steps 1..epochs), and nothing else from these experiments."""
    import mlflow

    client = mlflow.MlflowClient(uri)
    runs = [r for r in stored_runs(uri) if r.data.tags.get("dvc.exp_name") in names]
    per_experiment = Counter(r.data.tags["dvc.exp_name"] for r in runs)
    assert per_experiment == dict.fromkeys(names, 1 + len(backends)), per_experiment
    assert {r.info.status for r in runs} == {"FINISHED"}
    for name in names:
        mine = [r for r in runs if r.data.tags["dvc.exp_name"] == name]
        parents = [r for r in mine if "mlflow.parentRunId" not in r.data.tags]
        assert len(parents) == 1, name
        children = [r for r in mine if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
        assert sorted(r.data.tags["backend"] for r in children) == sorted(backends), name
        for child in children:
            steps = [m.step for m in client.get_metric_history(child.info.run_id, "train_mse")]
            assert sorted(steps) == list(range(1, epochs + 1)), (name, child.info.run_name)


def pairs_with(backend: str, backends: tuple[str, ...]) -> list[str]:
    """The compare report's names (`a~b`, in train.backends' order) of every pair that includes `backend`."""
    import itertools

    return [f"{a}~{b}" for a, b in itertools.combinations(backends, 2) if backend in (a, b)]

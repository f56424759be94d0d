"""Faults injected into real runs: Ctrl-C or SIGTERM during training, a full disk, a read-only folder.
Nothing is left half-written, no run is left RUNNING, and the next `./pipeline repro` completes."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from adaline_repro.core.errors import EXIT_WRITE
from tests.conftest import OUTPUT_FOLDERS, Background, output_hashes, run_cmd, stored_runs
from tests.e2e.conftest import copy_of


def _leftovers(root: Path) -> list[str]:
    """Temporary files of an interrupted atomic write."""
    return [str(p) for f in OUTPUT_FOLDERS for p in (root / f).rglob(".*.tmp")]


def _stage_processes(root: Path) -> list[str]:
    found = []
    for proc in psutil.process_iter(["cmdline", "cwd"]):
        with contextlib.suppress(psutil.Error):
            if proc.info["cwd"] == str(root) and "adaline_repro" in " ".join(proc.info["cmdline"] or []):
                found.append(" ".join(proc.info["cmdline"]))
    return found


@pytest.fixture
def clone(ran_clone):
    """A clone that has run once, then asked for a training too long to finish before it is interrupted (a
    new learning rate, 100,000 epochs: minutes, where the interruption comes seconds in)."""
    root, env = ran_clone
    params = root / "params.yaml"
    params.write_text(params.read_text().replace("epochs: 20", "epochs: 100000").replace("lr: 0.01", "lr: 0.011"))
    return root, env


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_an_interrupted_training_changes_nothing_and_the_next_repro_completes(clone, how):
    """Ctrl-C reaches the whole process group as a terminal sends it; SIGTERM (`kill PID`) only
    ./pipeline repro, which passes it on to the stage. Either way the outputs and dvc.lock are put back."""
    root, env = clone
    before = output_hashes(root)
    runs_before = {r.info.run_id for r in stored_runs(env["MLFLOW_TRACKING_URI"])}
    repro = Background(["./pipeline", "repro"], root, env)
    repro.wait_for("> ./pipeline stage train", 120)
    time.sleep(5)  # torch imported, training under way (it would take minutes)
    assert repro.proc.poll() is None, "training finished before the interruption"
    if how == "ctrl-c":
        os.killpg(repro.proc.pid, signal.SIGINT)
    else:
        os.kill(repro.proc.pid, signal.SIGTERM)
    code = repro.proc.wait(timeout=120)
    output = "\n".join(repro.lines)
    assert code != 0, output
    if how == "sigterm":
        assert code == 128 + signal.SIGTERM, output
    assert "repro: outputs and dvc.lock are as they were before this run" in output
    assert output_hashes(root) == before
    assert _leftovers(root) == []
    assert _stage_processes(root) == []
    runs = stored_runs(env["MLFLOW_TRACKING_URI"])
    assert {r.info.run_id for r in runs} == runs_before
    assert "RUNNING" not in {r.info.status for r in runs}

    params = root / "params.yaml"  # the same learning rate, a training short enough to see to the end
    params.write_text(params.read_text().replace("epochs: 100000", "epochs: 21"))
    done = run_cmd(["./pipeline", "repro"], root, env)
    assert "Running stage 'train@manual'" in done.stdout
    assert len(stored_runs(env["MLFLOW_TRACKING_URI"])) == len(runs_before) + 4


@contextlib.contextmanager
def _tmpfs(folder: Path, options: str) -> Iterator[None]:
    """A small tmpfs mounted over `folder`, holding a copy of what was there (root only)."""
    saved = folder.with_name(folder.name + ".saved")
    shutil.copytree(folder, saved)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], capture_output=True)
    if done.returncode != 0:
        shutil.rmtree(saved)
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        shutil.copytree(saved, folder, dirs_exist_ok=True)
        if options == "full":
            with contextlib.suppress(OSError), (folder / "filler").open("wb") as fill:
                while True:
                    fill.write(b"\0" * 4096)
                    fill.flush()
        else:
            subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)
        shutil.rmtree(saved)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
@pytest.mark.parametrize(("fault", "reason"), [("full", "No space left on device"), ("ro", "Read-only file system")])
def test_a_full_disk_or_read_only_folder_is_one_line_and_nothing_half_written(ran_clone, fault, reason):
    """The evaluate stage writing its metrics onto a full or read-only file system: one line naming the
    file and the reason, exit 74 (a failed write, not bad input); the previous metrics intact and no
    temporary file left."""
    root, env = ran_clone
    metrics = root / "metrics"
    before = {p.name: p.read_bytes() for p in metrics.iterdir()}
    command = [
        "./pipeline", "stage", "evaluate", "--models", "models", "--curves", "plots/loss", "--predictions",
        "predictions", "--metrics", "metrics", "--train", "data/prepared/train.csv", "--test", "data/prepared/test.csv",
    ]  # fmt: skip
    with _tmpfs(metrics, fault):
        done = run_cmd(command, root, {**env, "DVC_ROOT": str(root)}, check=False)
        left = sorted(p.name for p in metrics.iterdir() if p.name != "filler")
        after = {name: (metrics / name).read_bytes() for name in before}
    assert done.returncode == EXIT_WRITE, done.stderr
    assert done.stderr.strip() == f"error: metrics/manual.json: cannot write ({reason})"
    assert left == sorted(before)  # no temporary file
    assert after == before


@contextlib.contextmanager
def _checkout_on_tmpfs(first_repro, tmp_path_factory, size: str) -> Iterator[tuple[Path, dict]]:
    """A clone that has run once, on a tmpfs of its own (the venv and the MLflow store stay outside it)."""
    mount = tmp_path_factory.mktemp("tmpfs")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield copy_of(first_repro, tmp_path_factory.mktemp("beside-tmpfs"), root=mount / "checkout")
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


class _Filler:
    """Another process's data filling the disk: once started, it takes every block that comes free."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "filler"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fill, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _fill(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT)
        try:
            while not self._stop.is_set():
                try:
                    os.write(fd, b"\0" * 4096)
                except OSError:
                    time.sleep(0.002)
        finally:
            os.close(fd)

    def free(self) -> None:
        self._stop.set()
        self._thread.join()
        self.path.unlink()


def _half_written(root: Path, before: dict[str, str]) -> list[str]:
    """Outputs that exist with bytes of neither the previous run nor (the same, with --force) this one."""
    now = output_hashes(root) if (root / "dvc.lock").exists() else {}
    return [name for name, digest in now.items() if name in before and digest != before[name]]


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
@pytest.mark.parametrize("fills_at", ["Running stage 'prepare'", "Running stage 'train@autograd'"])
def test_a_disk_that_fills_during_a_run_is_one_line_and_the_previous_state_comes_back(
    first_repro, tmp_path_factory, fills_at
):
    """`./pipeline repro --force` on a checkout whose file system fills up part-way (from the named stage on,
    every block that comes free is taken): one line naming the file that could not be written, exit 74, and
    either the previous outputs and dvc.lock restored or a line saying which could not be; never a
    half-written output. Once there is room again the next `./pipeline repro` puts back whatever was left
    and ends with the previous bytes and `dvc status` clean. With the disk full from the start, nothing is
    run or changed."""
    with _checkout_on_tmpfs(first_repro, tmp_path_factory, "24m") as (root, env):
        before = output_hashes(root)
        filler = _Filler(root.parent)
        run = Background(["./pipeline", "repro", "--force"], root, env)
        run.wait_for(fills_at, 300)
        filler.start()
        code = run.proc.wait(timeout=600)
        output = run.lines
        half_written = _half_written(root, before)
        filler.free()
        print(f"disk full from {fills_at}: exit {code}; " + " | ".join(line for line in output if "repro:" in line
              or line.startswith("error:")))  # fmt: skip
        errors = [line for line in output if line.startswith("error:")]
        assert code == EXIT_WRITE, "\n".join(output)
        assert len(errors) == 1, errors
        named = r"error: (\S+: cannot write|DVC could not save the outputs of stage '\S+') \(No space left on device\)"
        assert re.fullmatch(named, errors[0]), errors
        ending = [line for line in output if line.startswith("repro:")]
        assert ending in (
            ["repro: outputs and dvc.lock are as they were before this run"],
            [next((line for line in ending if line.startswith("repro: could not put back ")), "none")],
        ), ending
        assert half_written == []

        again = run_cmd(["./pipeline", "repro"], root, env)
        if ending[0].startswith("repro: could not put back "):  # the next run puts back what was left
            previous = r"^repro: the previous run, \./pipeline repro --force \(PID \d+, started [^)]+\), "
            put_back = (
                r"(stopped part-way|could not put its outputs back): outputs and dvc.lock are as they were before it"
            )
            assert re.search(previous + put_back, again.stderr, re.MULTILINE), again.stderr
        assert output_hashes(root) == before
        assert (
            run_cmd(["./pipeline", "dvc", "status"], root, env).stdout.strip() == "Data and pipelines are up to date."
        )

        filler = _Filler(root.parent)
        filler.start()
        time.sleep(0.5)
        full = run_cmd(["./pipeline", "repro", "--force"], root, env, check=False)
        filler.free()
        assert full.returncode == EXIT_WRITE, full.stderr
        refused = r"error: \S+: cannot (write|copy it aside to \.dvc/tmp before the run) \(No space left on device\)"
        assert re.fullmatch(refused + r"; nothing was run or changed\n", full.stderr), full.stderr
        assert output_hashes(root) == before

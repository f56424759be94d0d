"""Faults injected into real runs: Ctrl-C or SIGTERM during training, a full disk, a read-only folder.
Nothing is left half-written, no run is left RUNNING, and the next `./pipeline repro` completes."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.conftest import OUTPUT_FOLDERS, Background, make_clone, output_hashes, run_cmd, stored_runs


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
def clone(tmp_path_factory):
    """A clone that has run once, then asked for a long training (a new learning rate, 1,500 epochs)."""
    root, env = make_clone(tmp_path_factory)
    run_cmd(["./pipeline", "repro"], root, env)
    params = root / "params.yaml"
    params.write_text(params.read_text().replace("epochs: 20", "epochs: 1500").replace("lr: 0.01", "lr: 0.011"))
    return root, env


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_an_interrupted_training_changes_nothing_and_the_next_repro_completes(clone, how):
    """Ctrl-C reaches the whole process group as a terminal sends it; SIGTERM (`kill PID`) only
    ./pipeline repro, which passes it on to the stage. Either way the outputs and dvc.lock are put back."""
    root, env = clone
    before = output_hashes(root)
    runs_before = {r.info.run_id for r in stored_runs(env["MLFLOW_TRACKING_URI"])}
    repro = Background(["./pipeline", "repro"], root, env)
    repro.wait_for("> ./pipeline train", 120)
    time.sleep(5)  # torch imported, training under way (it takes ~15 s at 1,500 epochs)
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

    done = run_cmd(["./pipeline", "repro"], root, env)  # the same change, this time to the end
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
def test_a_full_disk_or_read_only_folder_is_one_line_and_nothing_half_written(tmp_path_factory, fault, reason):
    """The evaluate stage writing its metrics onto a full or read-only file system: one line naming the
    file and the reason, exit 2; the previous metrics intact and no temporary file left."""
    root, env = make_clone(tmp_path_factory)
    run_cmd(["./pipeline", "repro"], root, env)
    metrics = root / "metrics"
    before = {p.name: p.read_bytes() for p in metrics.iterdir()}
    command = [
        "./pipeline", "evaluate", "--models", "models", "--curves", "plots/loss", "--predictions", "predictions",
        "--metrics", "metrics", "--train", "data/prepared/train.csv", "--test", "data/prepared/test.csv",
    ]  # fmt: skip
    with _tmpfs(metrics, fault):
        done = run_cmd(command, root, {**env, "DVC_ROOT": str(root)}, check=False)
        left = sorted(p.name for p in metrics.iterdir() if p.name != "filler")
        after = {name: (metrics / name).read_bytes() for name in before}
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == f"error: metrics/manual.json: cannot write ({reason})"
    assert left == sorted(before)  # no temporary file
    assert after == before

"""What the shared-machine trials (test_one_run_per_checkout.py and its soak) have in common: a clone that
has run once, the two learning rates a trial switches between, and what a finished trial must leave.

Each trial switches train.lr between two values, so a result put back from before the run would show in
the bytes: the references are the outputs of undisturbed runs of each value.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import psutil

from adaline_repro.repro import snapshot
from adaline_repro.repro.checkout_run import RECORD
from tests.conftest import output_hashes, run_cmd, stored_runs

LR = {"A": "0.01", "B": "0.011"}
SECOND_COMMANDS = (
    ["./pipeline", "repro", "--force"],
    ["./pipeline", "check", "--update"],
    ["./pipeline", "dvc", "exp", "run"],
)
# The stages in the order DVC runs them: kill points and the latest offset are chosen by what the run is
# doing, not by the clock, so that no machine's speed or load can make a run end before its trial does.
STAGES = ("fetch", "prepare", "train@manual", "train@autograd", "train@module", "evaluate", "compare", "track")
LAST_STAGE = f"Running stage '{STAGES[-1]}'"  # track: importing MLflow alone keeps it running for seconds


def set_lr(root: Path, which: str) -> None:
    params = root / "params.yaml"
    params.write_text(re.sub(r"(?m)^(\s+lr:) \S+", rf"\1 {LR[which]}", params.read_text()))


def results(root: Path) -> dict[str, str]:
    """Every output and dvc.lock by hash, less the tracking marker (it names this clone's own store)."""
    return {name: digest for name, digest in output_hashes(root).items() if not name.startswith(".tracking")}


def references(root: Path, reference_b: dict[str, str]) -> dict[str, dict[str, str]]:
    """The outputs of an undisturbed run with each learning rate: A is `root`'s (a clone that has run once,
    undisturbed), B the `reference_b` fixture's."""
    found = {"A": results(root), "B": reference_b}
    assert found["A"] != found["B"]
    return found


def second_refused_first_completes(root: Path, env: dict, references: dict, which: str, first, second: list[str]):
    """Run `second` while `first` (a Background `./pipeline repro --force` with learning rate `which`) holds
    the checkout: it refuses at once (refused), and the first completes with the bytes of an undisturbed run
    (completes). Returns (exit code, seconds the refusal took)."""
    code, answered_s = refused(root, env, first, second)
    completes(root, env, references, which, first)
    return code, answered_s


def refused(root: Path, env: dict, first, second: list[str]) -> tuple[int, float]:
    """`second`, run while `first` holds the checkout, refuses at once with one line naming the first and
    exit 7. Returns (exit code, seconds the refusal took)."""
    asked = time.monotonic()
    done = run_cmd(second, root, env, check=False)
    answered_s = time.monotonic() - asked
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert done.returncode == 7, lines
    assert len(lines) == 1, lines
    assert lines[0].startswith(
        f"error: this checkout is in use by ./pipeline repro --force (PID {first.proc.pid}, started "
    ), lines
    assert answered_s < 5
    return done.returncode, answered_s


def completes(root: Path, env: dict, references: dict, which: str, first) -> None:
    """`first` completes with the bytes of an undisturbed run with learning rate `which`, vouched by dvc.lock
    and logged FINISHED, and leaves nothing behind."""
    code = first.proc.wait(timeout=600)
    assert code == 0, "\n".join(first.lines)
    assert results(root) == references[which], "not the bytes of an undisturbed run"
    assert dvc_status_clean(root, env)
    # Logged: the store holds this execution FINISHED (an earlier trial with the same learning rate may
    # have logged it: an execution is logged once per store, docs/tracking.md).
    assert "FINISHED" in {r.info.status for r in executions(env["MLFLOW_TRACKING_URI"], LR[which])}
    settled(root)


def kill_9(root: Path, proc, whole_group: bool) -> dict | None:
    """SIGKILL `proc` (alone, as the OOM killer does, or with its process group, as a CI timeout does) and
    return the run record it left (None: it had not taken the checkout)."""
    if whole_group:
        os.killpg(proc.pid, signal.SIGKILL)
    else:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return json.loads((root / RECORD).read_text()) if (root / RECORD).exists() else None


def recover(root: Path, env: dict):
    """The next `./pipeline repro`: (its result, its `repro: the previous run ...` lines)."""
    recovery = run_cmd(["./pipeline", "repro"], root, env)
    return recovery, [line for line in recovery.stderr.splitlines() if line.startswith("repro: the previous run")]


def dvc_status_clean(root: Path, env: dict) -> bool:
    done = run_cmd(["./pipeline", "dvc", "status"], root, env)
    return done.stdout.strip() == "Data and pipelines are up to date."


def executions(uri: str, lr: str) -> list:
    """The parent runs of the executions with this learning rate."""
    return [
        r
        for r in stored_runs(uri)
        if r.data.tags.get("adaline.role") == "execution" and r.data.params.get("train.lr") == lr
    ]


def settled(root: Path) -> None:
    """Nothing of a finished trial may be left: no run record, no snapshot, no stage process."""
    assert not (root / RECORD).exists()
    assert snapshot.strays(root) == []
    assert adaline_processes(root) == []


def adaline_processes(root: Path) -> list[str]:
    found = []
    for proc in psutil.process_iter(["cmdline", "cwd"]):
        try:
            if proc.info["cwd"] == str(root) and "adaline_repro" in " ".join(proc.info["cmdline"] or []):
                found.append(" ".join(proc.info["cmdline"]))
        except psutil.Error:
            continue
    return found

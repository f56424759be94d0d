"""What the shared-machine trials (test_one_run_per_checkout.py and its soak) have in common: a clone that
has run once, the two learning rates a trial switches between, and what a finished trial must leave.

Each trial switches train.lr between two values, so a result put back from before the run would show in
the bytes: the references are the outputs of undisturbed runs of each value.
"""

from __future__ import annotations

import re
from pathlib import Path

import psutil

from adaline_repro.repro import rollback
from adaline_repro.repro.run_record import RECORD
from tests.conftest import make_clone, output_hashes, run_cmd, stored_runs

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


def reference(tmp_path_factory, which: str) -> dict[str, str]:
    """The outputs of an undisturbed run with learning rate `which`, in a clone of its own."""
    root, env = make_clone(tmp_path_factory)
    set_lr(root, which)
    run_cmd(["./pipeline", "repro"], root, env)
    return results(root)


def ready_clone(tmp_path_factory, reference_b: dict[str, str]) -> tuple[Path, dict, dict[str, dict[str, str]]]:
    """A clone that has run once, undisturbed, with the first learning rate: (root, env, the outputs of an
    undisturbed run with each learning rate)."""
    root, env = make_clone(tmp_path_factory)
    run_cmd(["./pipeline", "repro"], root, env)
    references = {"A": results(root), "B": reference_b}
    assert references["A"] != references["B"]
    return root, env, references


def dvc_status_clean(root: Path, env: dict) -> bool:
    done = run_cmd(["./pipeline", "dvc", "status"], root, env)
    return done.stdout.strip() == "Data and pipelines are up to date."


def newest_execution(uri: str):
    parents = [r for r in stored_runs(uri) if r.data.tags.get("adaline.role") == "execution"]
    return max(parents, key=lambda r: r.info.start_time)


def settled(root: Path) -> None:
    """Nothing of a finished trial may be left: no run record, no snapshot, no stage process."""
    assert not (root / RECORD).exists()
    assert rollback.strays(root) == []
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

"""Queued DVC experiments: `dvc exp run --queue` once per setting, `dvc queue start -j N`, wait for all.

Used by the benchmarks and the tests; by hand, the same is three DVC commands (see docs/tracking.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_TORN_READS = 3  # looks at the queue's workers before a torn read is an error
_POLL_S = 2.0  # each look reads the queue's broker files and every task's result
_DVC = [sys.executable, "-m", "dvc"]  # this interpreter's DVC, whatever PATH holds


def _with_dvc_on_path(env: Mapping[str, str]) -> dict[str, str]:
    """The queue's workers start `dvc` by name: this interpreter's bin folder goes first on PATH."""
    return {**env, "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", os.defpath)])}


@dataclass(frozen=True)
class QueueResult:
    status: dict[str, str]  # experiment name -> DVC's status (Success, Failed, Running, Queued)
    wall_s: float  # from `dvc queue start` until the last experiment finished
    ended: str  # why the wait ended: "all succeeded", "one failed", "timed out"

    @property
    def succeeded(self) -> list[str]:
        return sorted(name for name, status in self.status.items() if status == "Success")


def _dvc(root: Path, env: Mapping[str, str], *args: str) -> str:
    done = subprocess.run(
        [*_DVC, *args], cwd=root, env=_with_dvc_on_path(env), capture_output=True, text=True, timeout=600
    )
    if done.returncode != 0:
        raise RuntimeError(f"dvc {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def enqueue(root: Path, env: Mapping[str, str], experiments: Mapping[str, Sequence[str]]) -> None:
    """Queue one experiment per name, with its `-S key=value` overrides."""
    for name, overrides in experiments.items():
        _dvc(root, env, "exp", "run", "--queue", "-n", name, *(f"-S{o}" for o in overrides))


def run(root: Path, env: Mapping[str, str], names: Sequence[str], jobs: int, timeout_s: float) -> QueueResult:
    """Start `jobs` workers on the queue and wait until every named experiment has reached a final state
    (Success or Failed) by DVC's own account of each, or the time is up. Nothing is inferred from how many
    workers are left: the last one leaves while the queue's final results are still being collected."""
    start = time.perf_counter()
    # Not waited on: the workers it leaves in the background would hold captured pipes open.
    quiet = {"cwd": root, "env": _with_dvc_on_path(env), "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    starter = subprocess.Popen([*_DVC, "queue", "start", "-j", str(jobs)], **quiet)
    ended = "timed out"
    try:
        while time.perf_counter() - start < timeout_s:
            states = {queue_status(root).get(n) for n in names}
            if "Failed" in states:
                ended = "one failed"
                break
            if states == {"Success"}:
                ended = "all succeeded"
                break
            time.sleep(_POLL_S)
        took = time.perf_counter() - start
        status = queue_status(root)
    finally:
        _stop_workers(root, env)
        try:
            starter.wait(timeout=60)
        except subprocess.TimeoutExpired:
            starter.kill()
    return QueueResult({n: status.get(n, "missing") for n in names}, took, ended)


def _stop_workers(root: Path, env: Mapping[str, str], timeout_s: float = 120) -> None:
    """`dvc queue stop`, then wait until the workers are gone: it only asks them to stop, and workers still
    winding down would make the next `dvc queue start` start none, then leave its queue unserved."""
    _dvc(root, env, "queue", "stop")
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline and queue_workers(root):
        time.sleep(1)


def queue_status(root: Path) -> dict[str, str]:
    """Experiment name -> its state in DVC's queue: Queued, Running, Success or Failed, from the queue's own
    API (what `dvc queue status` prints as a table). Success means the task finished and its experiment was
    collected (it has its ref); Failed, that the task finished without a result."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return {entry["name"]: entry["status"] for entry in repo.experiments.celery_queue.status() if entry["name"]}


def queue_workers(root: Path) -> int:
    """How many of the queue's workers answer (Celery's inspect, as `dvc queue status`'s last line counts
    them): to wait for `dvc queue stop` to take effect, never to judge whether experiments finished.

    kombu's file-system broker can hand the reader a reply file its writer has created but not yet filled
    (celery/kombu#1551, a JSONDecodeError): a torn read is asked again."""
    for _ in range(_TORN_READS - 1):
        with contextlib.suppress(json.JSONDecodeError):
            return _answering_workers(root)
        time.sleep(0.2)
    return _answering_workers(root)


def _answering_workers(root: Path) -> int:
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return len(repo.experiments.celery_queue.worker_status())


def logs(root: Path, env: Mapping[str, str], name: str) -> str:
    """What the experiment printed (`dvc queue logs`)."""
    return _dvc(root, env, "queue", "logs", name)

"""Queued DVC experiments: `dvc exp run --queue` once per setting, `dvc queue start -j N`, wait for all.

Used by the benchmarks and the tests; by hand, the same is three DVC commands (see docs/tracking.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_POLL_S = 0.5
_STATUS_EVERY_S = 15.0  # `dvc queue status` costs a core-second: asked rarely, refs (milliseconds) often
_DVC = [sys.executable, "-m", "dvc"]  # this interpreter's DVC, whatever PATH holds


def _with_dvc_on_path(env: Mapping[str, str]) -> dict[str, str]:
    """The queue's workers start `dvc` by name: this interpreter's bin folder goes first on PATH."""
    return {**env, "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", os.defpath)])}


@dataclass(frozen=True)
class QueueResult:
    status: dict[str, str]  # experiment name -> DVC's status (Success, Failed, Running, Queued)
    wall_s: float  # from `dvc queue start` until the last experiment finished
    ended: str  # why the wait ended: "all succeeded", "one failed", "no workers left", "timed out"

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


_NO_WORKERS = "Worker status: 0 active, 0 idle"


def queue_status(root: Path, env: Mapping[str, str]) -> dict[str, str]:
    """Name -> status from `dvc queue status` (its table: Task, Name, Created, Status); "no workers" under
    the key "" when none is left (they died, or never started)."""
    status = {}
    out = _dvc(root, env, "queue", "status")
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[-1] in ("Success", "Failed", "Running", "Queued"):
            status[fields[1]] = fields[-1]
    if _NO_WORKERS in out:
        status[""] = "no workers"
    return status


def _finished_refs(root: Path) -> set[str]:
    """Names of the experiments that finished successfully: each gets a git ref refs/exps/.../<name>."""
    refs = subprocess.run(
        ["git", "for-each-ref", "--format=%(refname)", "refs/exps"], cwd=root, capture_output=True, text=True
    ).stdout.split()
    return {ref.rsplit("/", 1)[-1] for ref in refs}


def run(root: Path, env: Mapping[str, str], names: Sequence[str], jobs: int, timeout_s: float) -> QueueResult:
    """Start `jobs` workers on the queue and wait until every named experiment succeeded or one failed."""
    start = time.perf_counter()
    # Not waited on: the workers it leaves in the background would hold captured pipes open.
    quiet = {"cwd": root, "env": _with_dvc_on_path(env), "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    starter = subprocess.Popen([*_DVC, "queue", "start", "-j", str(jobs)], **quiet)
    wanted, last_status, ended = set(names), start, "timed out"
    no_workers_seen = False
    try:
        while time.perf_counter() - start < timeout_s:
            if wanted <= _finished_refs(root):
                ended = "all succeeded"
                break
            if time.perf_counter() - last_status > _STATUS_EVERY_S:
                last_status = time.perf_counter()
                status = queue_status(root, env)
                if "Failed" in {status.get(n) for n in wanted}:
                    ended = "one failed"  # a failed experiment never gets its ref
                    break
                # The last worker leaves as the queue drains, while its experiments are still being
                # collected: only no workers at two checks in a row means nothing will move any more.
                if "" in status and no_workers_seen:
                    ended = "no workers left"
                    break
                no_workers_seen = "" in status
            time.sleep(_POLL_S)
        took = time.perf_counter() - start
        status = queue_status(root, env)
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
    while time.perf_counter() < deadline and "" not in queue_status(root, env):
        time.sleep(1)


def logs(root: Path, env: Mapping[str, str], name: str) -> str:
    """What the experiment printed (`dvc queue logs`)."""
    return _dvc(root, env, "queue", "logs", name)

"""Which process did something, and is it still running: a PID plus its start time, since PIDs are reused.

The run lock and the MLflow runs record the process that made them this way, so that a later run can tell
a run that is still going from one whose process was killed (`kill -9`, the OOM killer, a CI timeout).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from adaline_repro.core.run_env import RUN


@dataclass(frozen=True)
class ProcessId:
    pid: int
    started: float  # seconds since boot (Linux) or the epoch (elsewhere): compared on this machine only

    def __str__(self) -> str:
        return f"{self.pid}:{self.started:.2f}"

    @classmethod
    def parse(cls, text: str) -> ProcessId | None:
        pid, _, started = text.partition(":")
        try:
            return cls(int(pid), float(started))
        except ValueError:
            return None


def start_time(pid: int) -> float | None:
    """When the process started, or None when there is no such process (a zombie, exited and not yet
    reaped, counts as none).

    On Linux read from /proc (field 22 of stat, in clock ticks since boot): a fraction of a millisecond, where
    importing psutil would add ~20 ms to every `./pipeline repro`, the no-op one included."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return None if fields[0] == b"Z" else int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except FileNotFoundError:
        if os.path.isdir("/proc/self"):
            return None  # Linux, and no such process
    except (OSError, IndexError, ValueError):
        return None
    import psutil

    try:
        process = psutil.Process(pid)
        return None if process.status() == psutil.STATUS_ZOMBIE else process.create_time()
    except psutil.Error:
        return None


def current() -> ProcessId:
    started = start_time(os.getpid())
    assert started is not None  # this process exists
    return ProcessId(os.getpid(), started)


def alive(process: ProcessId) -> bool:
    """The process is running (a zombie counts as gone) and is the one recorded, not a reuse of its PID."""
    started = start_time(process.pid)
    return started is not None and abs(started - process.started) <= 0.05


def started_by(run: ProcessId) -> list[int]:
    """PIDs of the running processes started by `run` or its children (they carry its run_env.RUN)."""
    import psutil

    token = str(run)
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(RUN) == token and proc.pid != os.getpid():
                found.append(proc.pid)
        except psutil.Error:  # another user's process, or gone meanwhile
            continue
    return found


def stop(pids: list[int], timeout_s: float = 30.0) -> None:
    """SIGTERM (a stage unwinds: its runs end KILLED, its temporary files go), then SIGKILL if still there."""
    import psutil

    procs = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            proc.terminate()
            procs.append(proc)
        except psutil.Error:
            continue
    _, alive_ = psutil.wait_procs(procs, timeout=timeout_s)
    for proc in alive_:
        try:
            proc.kill()
        except psutil.Error:
            continue
    psutil.wait_procs(alive_, timeout=timeout_s)

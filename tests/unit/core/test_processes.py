"""A process is recognised by PID and start time: a dead one, a zombie and a reused PID all count as gone,
and a dead run's leftover processes are found by the token it passed them and stopped."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from adaline_repro.core import processes, run_env
from adaline_repro.core.processes import ProcessId


def test_this_process_is_alive_and_its_text_form_parses_back():
    me = processes.current()
    assert me.pid == os.getpid()
    assert processes.alive(me)
    assert ProcessId.parse(str(me)) == ProcessId(me.pid, round(me.started, 2))
    assert ProcessId.parse("not a process") is None


def test_an_exited_process_a_zombie_and_a_reused_pid_are_not_alive():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    started = processes.start_time(child.pid)
    deadline = time.monotonic() + 30
    while Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert started is not None
    assert not processes.alive(ProcessId(child.pid, started))  # exited, not yet reaped: a zombie
    child.wait()
    assert not processes.alive(ProcessId(child.pid, started))  # gone
    assert not processes.alive(ProcessId(os.getpid(), processes.current().started - 100))  # PID reused


def test_a_dead_runs_leftover_processes_are_found_by_its_token_and_stopped():
    dead_run = ProcessId(os.getpid(), 1.0)  # a run that no longer exists
    env = {**os.environ, run_env.RUN: str(dead_run)}
    leftover = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=env)
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        deadline = time.monotonic() + 30
        while leftover.pid not in processes.started_by(dead_run):
            assert time.monotonic() < deadline, "the leftover process was not found"
            time.sleep(0.05)
        assert bystander.pid not in processes.started_by(dead_run)
        processes.stop(processes.started_by(dead_run), timeout_s=10)
        assert processes.start_time(leftover.pid) is None  # ended (and reaped)
        assert bystander.poll() is None
    finally:
        for proc in (leftover, bystander):
            proc.kill()
            proc.wait()

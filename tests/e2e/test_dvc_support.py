"""The DVC seam against real DVC: its rwlock and workspace-experiment notes while a real `dvc repro` or `dvc exp
run` runs a stage; what breaks without the one file the seam writes; the stage's name DVC hands a stage,
which its outcome note goes by; the type of the failure DVC raises for a path another DVC holds; `dvc status
--json`; where queued experiments run; and the params DVC queues for a sweep's grid. A DVC upgrade that
changes one of these fails the test named after it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from bench.sweep import queue_status, queue_workers
from dvc import __version__ as dvc_version

from adaline_repro.core import run_env
from adaline_repro.core.checkout import repository_root
from adaline_repro.dvc_support import internals
from adaline_repro.dvc_support.overrides import Overrides, grid

DVC = [sys.executable, "-m", "dvc"]
PY = sys.executable
# A stage that says it started, then waits for `go` before it writes its output: DVC is caught mid-stage.
HOLD = f"{PY} -c \"import pathlib, time; pathlib.Path('started').touch(); " \
       f"[time.sleep(0.05) for _ in iter(lambda: pathlib.Path('go').exists(), True)]; " \
       f"pathlib.Path('out.txt').write_text('x')\""  # fmt: skip
# A stage whose exit code is params.yaml's x (0 succeeds); it notes where it ran when CWD_LOG is set.
EXIT_X = f"{PY} -c \"import os, sys, yaml; x = yaml.safe_load(open('params.yaml'))['x']; open('out.txt', 'w').write(str(x)); os.environ.get('CWD_LOG') and open(os.environ['CWD_LOG'], 'a').write(os.getcwd() + chr(10)); sys.exit(x)\""  # noqa: E501


def _env() -> dict[str, str]:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_SYSTEM": os.devnull}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", os.defpath)])
    env.pop("DVC_ROOT", None)
    return env


def _run(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(list(args), cwd=root, env=_env(), capture_output=True, text=True, timeout=300)
    if check and done.returncode != 0:
        raise AssertionError(f"{args} exited {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done


def _repo(tmp_path: Path, cmd: str) -> Path:
    """A git + DVC repository with one stage `work` running `cmd`, params.yaml's x a parameter of it."""
    root = tmp_path / "repo"
    root.mkdir()
    _run(root, "git", "-c", "init.defaultBranch=main", "init", "-q")
    for key, value in {"user.name": "test", "user.email": "test@localhost"}.items():
        _run(root, "git", "config", key, value)
    _run(root, *DVC, "init", "-q")
    _run(root, *DVC, "config", "core.analytics", "false")
    (root / "params.yaml").write_text("x: 0\n")
    stage = {"stages": {"work": {"cmd": cmd, "params": ["x"], "outs": ["out.txt"]}}}
    (root / "dvc.yaml").write_text(json.dumps(stage))
    (root / ".gitignore").write_text("/out.txt\n/started\n/go\n")
    _run(root, "git", "add", "-A")
    _run(root, "git", "commit", "-qm", "init")
    return root


def _mid_stage(root: Path, *dvc_args: str) -> subprocess.Popen:
    """DVC started with `dvc_args`, returned once its stage is running (and waiting for `go`)."""
    proc = subprocess.Popen([*DVC, *dvc_args], cwd=root, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while not (root / "started").exists():
        assert proc.poll() is None, f"dvc {dvc_args} exited {proc.returncode} before its stage started"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return proc


def test_the_seam_names_the_dvc_it_was_checked_against():
    """Bumping DVC means reading these formats again: the pinned version and the seam's header agree."""
    assert dvc_version == internals.CHECKED_AGAINST


@pytest.mark.parametrize("command", [("repro",), ("exp", "run")])
def test_a_bare_dvc_mid_stage_is_seen_in_its_rwlock_and_workspace_notes(tmp_path, command):
    """While real DVC runs a stage, the rwlock names the output it writes with DVC's PID and command; a
    workspace `dvc exp run` also records its PID; the seam reports the holder as `dvc <command> (PID n)`."""
    root = _repo(tmp_path, HOLD)
    proc = _mid_stage(root, *command)
    try:
        writers = internals.rwlock_writers(root)
        assert writers["out.txt"][0] == proc.pid, writers
        assert " ".join(command) in writers["out.txt"][1], writers
        if command == ("exp", "run"):
            assert internals.workspace_experiment_pid(root) == proc.pid
        assert internals.bare_dvc_holder(root) == f"dvc {' '.join(command)} (PID {proc.pid})"
    finally:
        (root / "go").touch()
        proc.wait(timeout=120)
    assert proc.returncode == 0
    assert internals.bare_dvc_holder(root) is None  # the notes DVC leaves name a process that is gone


def test_a_killed_dvcs_rwlock_entries_need_no_cleaning(tmp_path):
    """`kill -9` leaves real DVC's entries in its rwlock: the seam no longer counts the dead process as a
    holder, and the next `dvc repro` proceeds past them on its own (so they are left as DVC wrote them)."""
    root = _repo(tmp_path, HOLD)
    proc = _mid_stage(root, "repro")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.pid in {pid for pid, _ in internals.rwlock_writers(root).values()}
    assert internals.bare_dvc_holder(root) is None
    (root / "go").touch()
    _run(root, *DVC, "repro")
    assert (root / "out.txt").read_text() == "x"


def test_an_unreadable_rwlock_stops_every_dvc_command_until_the_seam_removes_it(tmp_path):
    """The one file of DVC's the seam writes, and why: a rwlock left empty (a full disk while DVC rewrote it
    in place) makes real DVC refuse to run; removed, DVC runs again."""
    root = _repo(tmp_path, EXIT_X)
    (root / internals.RWLOCK).parent.mkdir(parents=True, exist_ok=True)
    (root / internals.RWLOCK).write_text("")
    refused = _run(root, *DVC, "repro", check=False)
    assert refused.returncode != 0
    assert "rwlock" in (refused.stdout + refused.stderr).lower()
    assert internals.remove_unreadable_rwlock(root) is True
    _run(root, *DVC, "repro")
    assert internals.remove_unreadable_rwlock(root) is False  # DVC's own, readable again: left alone


def test_each_stage_notes_its_outcome_under_the_name_dvc_runs_it_by(tmp_path):
    """DVC hands each stage command its name (DVC_STAGE) and the run's environment, so a stage's note of how
    it ended reaches the run that started DVC: the failing stage and its own exit code, not DVC's 255."""
    note = (f"{PY} -c \"import sys, yaml; from adaline_repro.core import run_env; run_env.started(); "
            "x = yaml.safe_load(open('params.yaml'))['x']; open('out.txt', 'w').write(str(x)); "
            "run_env.ended(x); sys.exit(x)\"")  # fmt: skip
    root = _repo(tmp_path, note)
    (root / "params.yaml").write_text("x: 3\n")
    outcomes = tmp_path / "outcomes"
    outcomes.mkdir()
    env = {**_env(), run_env.OUTCOMES: str(outcomes), "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    done = subprocess.run([*DVC, "repro"], cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert [(o.stage, o.exit_code) for o in run_env.outcomes(outcomes)] == [("work", 3)]


_REPRO_IN_PROCESS = textwrap.dedent("""
    import json, logging
    from dvc.cli import main
    from adaline_repro.dvc_support.internals import DvcFailure
    failure = DvcFailure()
    logging.getLogger("dvc").addHandler(failure)
    code = main(["repro"])
    print(json.dumps({"code": code, "locked": failure.locked, "write": failure.write is not None}))
""")


def test_a_path_another_dvc_holds_is_told_by_the_type_of_real_dvc_s_failure(tmp_path):
    """`dvc repro` in a process with the seam's handler attached, as ./pipeline repro runs it, while another
    DVC runs a stage: what DVC logs is a LockError, whatever its words."""
    root = _repo(tmp_path, HOLD)
    holder = _mid_stage(root, "repro")
    env = {**_env(), "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    try:
        done = subprocess.run([PY, "-c", _REPRO_IN_PROCESS], cwd=root, env=env, capture_output=True, text=True,
                              timeout=300)  # fmt: skip
    finally:
        (root / "go").touch()
        holder.wait(timeout=120)
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found == {"code": found["code"], "locked": True, "write": False}
    assert found["code"] != 0


def test_stale_params_are_read_from_real_dvc_status_json(tmp_path):
    root = _repo(tmp_path, EXIT_X)
    _run(root, *DVC, "repro")
    (root / "params.yaml").write_text("x: 0\ny: 1\n")
    assert internals.stale_reasons(json.loads(_run(root, *DVC, "status", "--json").stdout)) == []
    (root / "params.yaml").write_text("x: 5\n")
    status = json.loads(_run(root, *DVC, "status", "--json").stdout)
    assert internals.stale_reasons(status) == ["work: params.yaml x modified"]


def test_a_sweep_s_grid_is_what_dvc_exp_run_queue_queues(tmp_path):
    """`dvc exp run --queue -S` with comma lists and a range: the params.yaml DVC stashes for each queued
    experiment are exactly the grid's points as Overrides gives their params (each value applied once by
    DVC's own apply_overrides, combined per point)."""
    import yaml
    from dvc.repo import Repo

    root = _repo(tmp_path, EXIT_X)
    (root / "params.yaml").write_text("x: 0\ny: 0.5\nseed: 0\n")
    _run(root, "git", "commit", "-qam", "more params")
    overrides = ["y=0.25,1e-3", "seed=range(1,4,2)"]
    _run(root, *DVC, "exp", "run", "--queue", *(a for o in overrides for a in ("-S", o)))
    with Repo(str(root)) as repo:
        stashed = [e.stash_rev for e in repo.experiments.celery_queue.iter_queued()]
    queued = [yaml.safe_load(_run(root, "git", "show", f"{rev}:params.yaml").stdout) for rev in stashed]
    applied = Overrides((root / "params.yaml").read_text())
    ours = [applied.params(point) for point in grid(overrides)]
    assert len(ours) == 4
    assert sorted(map(json.dumps, queued)) == sorted(map(json.dumps, ours))
    _run(root, *DVC, "queue", "remove", "--queued", check=False)


def test_the_queue_reports_each_experiment_s_final_state_once_collected(tmp_path):
    """Real DVC's queue, as the test harness reads it (bench/sweep.py): a finished experiment is Success only
    once it has its ref; one whose stage fails is Failed; each runs in a copy under .dvc/tmp/exps/, which
    core/checkout.py maps back to the repository; the workers count until `dvc queue stop` takes effect."""
    root = _repo(tmp_path, EXIT_X)
    _run(root, *DVC, "exp", "run", "--queue", "-n", "good", "-S", "x=0")
    _run(root, *DVC, "exp", "run", "--queue", "-n", "bad", "-S", "x=4")
    assert queue_status(root) == {"good": "Queued", "bad": "Queued"}
    cwd_log = tmp_path / "cwd.log"
    starter = subprocess.Popen([*DVC, "queue", "start", "-j", "1"], cwd=root, env={**_env(), "CWD_LOG": str(cwd_log)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    workers_seen = 0
    try:
        deadline = time.monotonic() + 240
        while set(queue_status(root).values()) - {"Success", "Failed"}:
            workers_seen = max(workers_seen, queue_workers(root))
            assert time.monotonic() < deadline, queue_status(root)
            time.sleep(0.5)
        assert queue_status(root) == {"good": "Success", "bad": "Failed"}
        refs = _run(root, "git", "for-each-ref", "--format=%(refname)", "refs/exps").stdout.split()
        # An experiment's ref is refs/exps/<2 hex>/<rest of its baseline commit>/<name> (dvc's refs.py);
        # the queue keeps its own refs beside them (refs/exps/celery/stash, .../failed).
        assert [ref.split("/")[-1] for ref in refs if not ref.startswith("refs/exps/celery/")] == ["good"]
        assert workers_seen == 1
        # Queued experiments run in copies under .dvc/tmp/exps/ (core/checkout.py and ./pipeline rely on it to
        # find the repository, its venv and its store).
        ran_in = [Path(line) for line in cwd_log.read_text().splitlines()]
        assert len(ran_in) == 2
        assert all(str(d).startswith(str(root / ".dvc" / "tmp" / "exps") + os.sep) for d in ran_in), ran_in
        assert {repository_root(d) for d in ran_in} == {root}
    finally:
        _run(root, *DVC, "queue", "stop", check=False)
        deadline = time.monotonic() + 120
        while queue_workers(root) and time.monotonic() < deadline:
            time.sleep(1)
        starter.wait(timeout=60)
    assert queue_workers(root) == 0


def test_the_checkout_run_refuses_while_a_bare_dvc_runs_a_stage_and_not_after(tmp_path):
    """`dvc repro` started without ./pipeline takes no lock of ours: the run lock sees it through DVC's own
    notes and refuses, naming it; once it has finished, the checkout is free."""
    from adaline_repro.repro.checkout_run import CheckoutBusy, CheckoutRun

    root = _repo(tmp_path, HOLD)
    proc = _mid_stage(root, "repro")
    try:
        with (
            pytest.raises(CheckoutBusy, match=rf"^this checkout is in use by dvc repro \(PID {proc.pid}\);"),
            CheckoutRun(root, "./pipeline repro", say=print),
        ):
            pytest.fail("ran beside a bare dvc repro")
    finally:
        (root / "go").touch()
        proc.wait(timeout=120)
    with CheckoutRun(root, "./pipeline repro", say=print):
        pass

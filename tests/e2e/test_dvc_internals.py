"""The DVC seam against what real DVC writes: its rwlock and workspace-experiment notes while a real `dvc repro`
or `dvc exp run` runs a stage, its exception chain for a failed stage and for a path another DVC holds,
`dvc status --json`, its queue's account of each experiment, and the params it queues for a sweep's grid.
A DVC upgrade that changes one of these fails the test named after it."""

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
from dvc import __version__ as dvc_version

from adaline_repro import dvc_internals
from adaline_repro.workspace import repository_root

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
    assert dvc_version == dvc_internals.CHECKED_AGAINST


@pytest.mark.parametrize("command", [("repro",), ("exp", "run")])
def test_a_bare_dvc_mid_stage_is_seen_in_its_rwlock_and_workspace_notes(tmp_path, command):
    """While real DVC runs a stage, the rwlock names the output it writes with DVC's PID and command; a
    workspace `dvc exp run` also records its PID; the seam reports the holder as `dvc <command> (PID n)`."""
    root = _repo(tmp_path, HOLD)
    proc = _mid_stage(root, *command)
    try:
        writers = dvc_internals.rwlock_writers(root)
        assert writers["out.txt"][0] == proc.pid, writers
        assert " ".join(command) in writers["out.txt"][1], writers
        if command == ("exp", "run"):
            assert dvc_internals.workspace_experiment_pid(root) == proc.pid
        assert dvc_internals.bare_dvc_holder(root) == f"dvc {' '.join(command)} (PID {proc.pid})"
    finally:
        (root / "go").touch()
        proc.wait(timeout=120)
    assert proc.returncode == 0
    assert dvc_internals.bare_dvc_holder(root) is None  # the notes DVC leaves name a process that is gone


def test_a_killed_dvcs_rwlock_entries_are_dropped_and_a_live_ones_kept(tmp_path):
    """`kill -9` leaves real DVC's entries in its rwlock; cleaning drops them, and DVC runs again."""
    root = _repo(tmp_path, HOLD)
    proc = _mid_stage(root, "repro")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.pid in {pid for pid, _ in dvc_internals.rwlock_writers(root).values()}
    assert dvc_internals.clean_rwlock(root) is False
    assert dvc_internals.rwlock_writers(root) == {}
    (root / "started").unlink()
    again = _mid_stage(root, "repro")
    try:
        assert dvc_internals.clean_rwlock(root) is False
        assert dvc_internals.rwlock_writers(root)["out.txt"][0] == again.pid  # a live holder stays
    finally:
        (root / "go").touch()
        again.wait(timeout=120)


_REPRO_IN_PROCESS = textwrap.dedent("""
    import json, logging, sys
    from dvc.cli import main
    from adaline_repro.dvc_internals import StageFailure
    failure = StageFailure()
    logging.getLogger("dvc").addHandler(failure)
    code = main(["repro"])
    print(json.dumps({"code": code, "stage": failure.stage, "exit": failure.code, "busy": failure.busy}))
""")


def _repro_in_process(root: Path) -> dict:
    """`dvc repro` in a process with the seam's StageFailure attached, as ./pipeline repro runs it."""
    env = {**_env(), "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    done = subprocess.run([PY, "-c", _REPRO_IN_PROCESS], cwd=root, env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_failed_stage_is_read_from_real_dvcs_exception_chain(tmp_path):
    root = _repo(tmp_path, EXIT_X)
    (root / "params.yaml").write_text("x: 3\n")
    found = _repro_in_process(root)
    assert (found["stage"], found["exit"], found["busy"]) == ("work", 3, None), found
    assert found["code"] != 0


def test_a_path_another_dvc_holds_is_read_from_real_dvcs_lock_error(tmp_path):
    root = _repo(tmp_path, HOLD)
    holder = _mid_stage(root, "repro")
    try:
        found = _repro_in_process(root)
    finally:
        (root / "go").touch()
        holder.wait(timeout=120)
    assert found["busy"] in [f"{path} is in use by dvc repro (PID {holder.pid})" for path in ("out.txt", "params.yaml")]


def test_stale_params_are_read_from_real_dvc_status_json(tmp_path):
    root = _repo(tmp_path, EXIT_X)
    _run(root, *DVC, "repro")
    (root / "params.yaml").write_text("x: 0\ny: 1\n")
    assert dvc_internals.stale_reasons(json.loads(_run(root, *DVC, "status", "--json").stdout)) == []
    (root / "params.yaml").write_text("x: 5\n")
    status = json.loads(_run(root, *DVC, "status", "--json").stdout)
    assert dvc_internals.stale_reasons(status) == ["work: params.yaml x modified"]


def test_a_sweep_s_grid_is_what_dvc_exp_run_queue_queues(tmp_path):
    """`dvc exp run --queue -S` with comma lists and a range: the params.yaml DVC stashes for each queued
    experiment are exactly dvc_internals.grid's points applied by dvc_internals.apply_overrides."""
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
    raw = yaml.safe_load((root / "params.yaml").read_text())
    ours = [dvc_internals.apply_overrides(raw, point) for point in dvc_internals.grid(overrides)]
    assert len(ours) == 4
    assert sorted(map(json.dumps, queued)) == sorted(map(json.dumps, ours))
    _run(root, *DVC, "queue", "remove", "--queued", check=False)


def test_the_queue_reports_each_experiment_s_final_state_once_collected(tmp_path):
    """Real DVC's queue: a finished experiment is Success only once it has its ref; one whose stage fails is
    Failed; each runs in a copy under .dvc/tmp/exps/; the workers count until `dvc queue stop` takes effect."""
    root = _repo(tmp_path, EXIT_X)
    _run(root, *DVC, "exp", "run", "--queue", "-n", "good", "-S", "x=0")
    _run(root, *DVC, "exp", "run", "--queue", "-n", "bad", "-S", "x=4")
    assert dvc_internals.queue_status(root) == {"good": "Queued", "bad": "Queued"}
    cwd_log = tmp_path / "cwd.log"
    starter = subprocess.Popen([*DVC, "queue", "start", "-j", "1"], cwd=root, env={**_env(), "CWD_LOG": str(cwd_log)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    workers_seen = 0
    try:
        deadline = time.monotonic() + 240
        while set(dvc_internals.queue_status(root).values()) - set(dvc_internals.QUEUE_FINAL):
            workers_seen = max(workers_seen, dvc_internals.queue_workers(root))
            assert time.monotonic() < deadline, dvc_internals.queue_status(root)
        assert dvc_internals.queue_status(root) == {"good": "Success", "bad": "Failed"}
        refs = _run(root, "git", "for-each-ref", "--format=%(refname)", "refs/exps").stdout.split()
        # An experiment's ref is refs/exps/<2 hex>/<rest of its baseline commit>/<name> (dvc's refs.py);
        # the queue keeps its own refs beside them (refs/exps/celery/stash, .../failed).
        assert [ref.split("/")[-1] for ref in refs if not ref.startswith("refs/exps/celery/")] == ["good"]
        assert workers_seen == 1
        # Queued experiments run in copies under .dvc/tmp/exps/ (workspace.py and ./pipeline rely on it to
        # find the repository, its venv and its store).
        ran_in = [Path(line) for line in cwd_log.read_text().splitlines()]
        assert len(ran_in) == 2
        assert all(str(d).startswith(str(root / ".dvc" / "tmp" / "exps") + os.sep) for d in ran_in), ran_in
        assert {repository_root(d) for d in ran_in} == {root}
    finally:
        _run(root, *DVC, "queue", "stop", check=False)
        deadline = time.monotonic() + 120
        while dvc_internals.queue_workers(root) and time.monotonic() < deadline:
            time.sleep(1)
        starter.wait(timeout=60)
    assert dvc_internals.queue_workers(root) == 0


def test_the_run_lock_refuses_while_a_bare_dvc_runs_a_stage_and_not_after(tmp_path):
    """`dvc repro` started without ./pipeline takes no lock of ours: the run lock sees it through DVC's own
    notes and refuses, naming it; once it has finished, the checkout is free."""
    from adaline_repro.repro import run_lock

    root = _repo(tmp_path, HOLD)
    proc = _mid_stage(root, "repro")
    try:
        with (
            pytest.raises(run_lock.CheckoutBusy, match=rf"^this checkout is in use by dvc repro \(PID {proc.pid}\);"),
            run_lock.hold(root, "./pipeline repro", wait=False, say=print),
        ):
            pytest.fail("ran beside a bare dvc repro")
    finally:
        (root / "go").touch()
        proc.wait(timeout=120)
    with run_lock.hold(root, "./pipeline repro", wait=False, say=print):
        pass

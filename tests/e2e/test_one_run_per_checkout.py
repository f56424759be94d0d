"""Shared machines, one fixed trial per case: each kind of second command started while a run is at a given
stage, `kill -9` at four points of a run, a run killed while it logs, queued experiments beside a run. The
randomized trials (20 concurrency, 10 kill) are the soak tier: test_one_run_per_checkout_soak.py."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import mlflow

from tests.conftest import Background, run_cmd, stored_runs
from tests.e2e import trials

# Each second command at a stage of its own, all during one first run: while the snapshot is fresh, while
# a backend trains, while the store is being written to.
CONCURRENT = (
    (trials.SECOND_COMMANDS[0], "Running stage 'prepare'"),
    (trials.SECOND_COMMANDS[1], "Running stage 'train@autograd'"),
    (trials.SECOND_COMMANDS[2], trials.LAST_STAGE),
)


def test_a_second_run_refuses_at_once_and_the_first_completes_with_its_own_bytes(ran_clone, reference_b):
    """`./pipeline repro --force` with a new learning rate; when it reaches each stage named above, a second
    `./pipeline repro --force`, `check --update` or `dvc exp run`. Each refuses at once with one line naming
    the first and exit 7; the first completes with exactly the bytes of an undisturbed run, vouched by
    dvc.lock and logged."""
    root, env = ran_clone
    references = trials.references(root, reference_b)
    trials.set_lr(root, "B")
    first = Background(["./pipeline", "repro", "--force"], root, env)
    for second, stage_line in CONCURRENT:
        first.wait_for(stage_line, 300)
        code, answered_s = trials.refused(root, env, first, second)
        print(f"concurrency: {' '.join(second)} at {stage_line!r} -> exit {code} in {answered_s:.2f} s")
    trials.completes(root, env, references, "B", first)


# (when, whole process group): killed before it writes its record (nothing to recover), while a backend
# trains with only ./pipeline killed (as the OOM killer does: the stage lives on) or with its whole group
# (as a CI timeout does).
KILL_POINTS = {
    "before the record is written": (None, False),
    "mid-train, the PID alone": ("Running stage 'train@autograd'", False),
    "mid-train, the process group": ("Running stage 'train@autograd'", True),
}


def test_after_kill_9_at_each_point_the_next_repro_recovers(ran_clone, reference_b):
    """`./pipeline repro --force` with a new learning rate, SIGKILLed at each point above. The next
    `./pipeline repro` says in one line what it did with the dead run's snapshot (nothing, when the run had
    not taken the checkout), stops its leftover stage, and ends with the bytes of an undisturbed run, `dvc
    status` clean, no run left RUNNING and nothing left behind."""
    root, env = ran_clone
    references = trials.references(root, reference_b)
    for trial, (point, (stage_line, whole_group)) in enumerate(KILL_POINTS.items()):
        which = "B" if trial % 2 == 0 else "A"
        trials.set_lr(root, which)
        background = Background(["./pipeline", "repro", "--force"], root, env)  # a process group of its own
        run = background.proc
        if stage_line is not None:
            background.wait_for(stage_line, 300)
            time.sleep(0.3)  # into the stage: its process has started
        assert run.poll() is None, f"{point}: the run ended before it was killed"
        record = trials.kill_9(root, run, whole_group)
        recovery, said = trials.recover(root, env)
        print(f"kill: {point}: state {record and record['state']!r}: {said}")
        if stage_line is None:
            assert record is None, f"{point}: the record was already written"
            assert said == []
        else:
            assert record["state"] == "restore", record
            assert said == [
                f"repro: the previous run, ./pipeline repro --force (PID {run.pid}, started {record['since']}), "
                "stopped part-way: outputs and dvc.lock are as they were before it"
            ], recovery.stderr
        assert trials.results(root) == references[which]
        assert trials.dvc_status_clean(root, env)
        assert "RUNNING" not in {r.info.status for r in stored_runs(env["MLFLOW_TRACKING_URI"])}
        trials.settled(root)


def test_runs_a_killed_run_left_running_are_marked_killed_by_the_next_run(ran_clone, reference_b):
    """The fourth kill point: the whole run is SIGKILLed while its track stage logs, and its MLflow runs stay
    RUNNING. The next `./pipeline repro` marks exactly those KILLED and says how many; a RUNNING run of
    another checkout in the same store is left alone."""
    root, env = ran_clone
    references = trials.references(root, reference_b)
    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    other = client.create_run(
        client.get_experiment_by_name("adaline-backends").experiment_id,
        tags={"adaline.checkout": "elsewhere:/srv/adaline", "adaline.process": "1:1.00"},
    ).info.run_id
    trials.set_lr(root, "B")
    run = subprocess.Popen(["./pipeline", "repro"], cwd=root, env=env, start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 300
    while _running(client, other) == 0:
        assert run.poll() is None, "the run finished before it was caught logging"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    left_running = _running(client, other)
    assert left_running >= 1

    recovery = run_cmd(["./pipeline", "repro"], root, env)
    print(f"killed while logging: {left_running} runs left RUNNING; recovery said: {recovery.stderr.strip()}")
    noun = "run" if left_running == 1 else "runs"
    assert (
        f"repro: marked {left_running} MLflow {noun} KILLED that a dead process of this checkout had left RUNNING"
        in recovery.stderr.splitlines()
    ), recovery.stderr
    assert _running(client, other) == 0
    assert client.get_run(other).info.status == "RUNNING"
    assert trials.results(root) == references["B"]
    assert trials.dvc_status_clean(root, env)
    trials.settled(root)


def _running(client: mlflow.MlflowClient, besides: str) -> int:
    experiments = [e.experiment_id for e in client.search_experiments()]
    running = client.search_runs(experiments, "attributes.status = 'RUNNING'")
    return len([r for r in running if r.info.run_id != besides])


def test_queued_experiments_run_beside_a_repro_and_queueing_waits_for_the_workspace(ran_clone):
    """A queued experiment runs in its own copy while `./pipeline repro --force` holds the checkout, and
    both complete with their own results; queueing a new one meanwhile is refused, since DVC stashes the
    workspace and writes params.yaml into it while it queues."""
    from bench import sweep

    from tests.conftest import assert_each_experiment_logged_once

    root, env = ran_clone
    reference = trials.results(root)
    sweep.enqueue(root, env, {"beside": ["train.seed=7"]})
    first = Background(["./pipeline", "repro", "--force"], root, env)
    first.wait_for("Running stage 'prepare'", 120)
    queued = run_cmd(["./pipeline", "dvc", "exp", "run", "--queue", "-S", "train.seed=8"], root, env, check=False)
    result = sweep.run(root, env, ["beside"], jobs=1, timeout_s=600)
    code = first.proc.wait(timeout=600)
    assert queued.returncode == 7, queued.stderr
    assert queued.stderr.startswith("error: this checkout is in use by ./pipeline repro --force (PID ")
    assert result.succeeded == ["beside"], (result.ended, result.status)
    assert_each_experiment_logged_once(env["MLFLOW_TRACKING_URI"], ["beside"], ("manual", "autograd", "module"), 20)
    assert code == 0, "\n".join(first.lines)
    assert trials.results(root) == reference
    assert trials.dvc_status_clean(root, env)

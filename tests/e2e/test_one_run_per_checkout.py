"""Shared machines: two runs started in one checkout, `kill -9` at random points, a run killed while it logs,
queued experiments beside a run. Trials draw their timings from fixed seeds (reproducible) and print them
(`pytest -s`); docs/reliability.md reports the counts.

Each trial switches train.lr between two values, so a result put back from before the run would show in
the bytes: the references are the outputs of undisturbed runs of each value.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import time
from pathlib import Path

import mlflow
import pytest

from adaline_repro.repro import rollback
from adaline_repro.repro.run_record import RECORD
from tests.conftest import Background, make_clone, output_hashes, run_cmd, stored_runs

LR = {"A": "0.01", "B": "0.011"}
SECOND_COMMANDS = (
    ["./pipeline", "repro", "--force"],
    ["./pipeline", "check", "--update"],
    ["./pipeline", "dvc", "exp", "run"],
)
GROUPS = 4  # of five concurrency trials each: 20, spread over the test workers
KILL_GROUPS = 2  # of five kill trials each: 10


def _set_lr(root: Path, which: str) -> None:
    params = root / "params.yaml"
    params.write_text(re.sub(r"(?m)^(\s+lr:) \S+", rf"\1 {LR[which]}", params.read_text()))


def _results(root: Path) -> dict[str, str]:
    """Every output and dvc.lock by hash, less the tracking marker (it names this clone's own store)."""
    return {name: digest for name, digest in output_hashes(root).items() if not name.startswith(".tracking")}


def _dvc_status_clean(root: Path, env: dict) -> bool:
    done = run_cmd(["./pipeline", "dvc", "status"], root, env)
    return done.stdout.strip() == "Data and pipelines are up to date."


def _newest_execution(uri: str):
    parents = [r for r in stored_runs(uri) if r.data.tags.get("adaline.role") == "execution"]
    return max(parents, key=lambda r: r.info.start_time)


def _settle(root: Path) -> None:
    """Nothing of a finished trial may be left: no run record, no snapshot."""
    assert not (root / RECORD).exists()
    assert rollback.strays(root) == []


@pytest.fixture(scope="session")
def references(tmp_path_factory) -> dict[str, dict[str, str]]:
    """The outputs of undisturbed runs with each learning rate."""
    root, env = make_clone(tmp_path_factory)
    run_cmd(["./pipeline", "repro"], root, env)
    found = {"A": _results(root)}
    _set_lr(root, "B")
    run_cmd(["./pipeline", "repro"], root, env)
    found["B"] = _results(root)
    assert found["A"] != found["B"]
    return found


def _ready_clone(tmp_path_factory, references) -> tuple[Path, dict]:
    """A clone that has run once: the outputs of the first learning rate."""
    root, env = make_clone(tmp_path_factory)
    run_cmd(["./pipeline", "repro"], root, env)
    assert _results(root) == references["A"]
    return root, env


# The stages in the order DVC runs them: kill points and the latest offset are chosen by what the run is
# doing, not by the clock, so that no machine's speed or load can make a run end before its trial does.
STAGES = ("fetch", "prepare", "train@manual", "train@autograd", "train@module", "evaluate", "compare", "track")
LAST_STAGE = f"Running stage '{STAGES[-1]}'"  # track: importing MLflow alone keeps it running for seconds


@pytest.mark.parametrize("group", range(GROUPS))
def test_a_second_run_always_refuses_and_the_first_always_completes_with_its_own_bytes(
    tmp_path_factory, references, group
):
    """Five trials: `./pipeline repro --force` with a new learning rate, and at a random offset (0-10 s, or
    when the last stage starts if that comes first, so that it is still running) a second `./pipeline repro
    --force`, `check --update` or `dvc exp run`. The second refuses at once with one line naming the first
    and exit 7; the first completes with exactly the bytes of an undisturbed run, vouched by dvc.lock and
    logged."""
    root, env = _ready_clone(tmp_path_factory, references)
    rng = random.Random(1000 + group)  # noqa: S311 (timings, not secrets)
    uri = env["MLFLOW_TRACKING_URI"]
    for trial in range(5):
        which = "B" if trial % 2 == 0 else "A"
        _set_lr(root, which)
        offset = rng.uniform(0, 10.0)
        second = SECOND_COMMANDS[(group * 5 + trial) % len(SECOND_COMMANDS)]
        first = Background(["./pipeline", "repro", "--force"], root, env)
        launched = time.monotonic()
        # "First" is the run that holds the checkout: the offset counts once its record exists.
        while not (root / RECORD).exists() or (
            time.monotonic() - launched < offset and not any(line.startswith(LAST_STAGE) for line in first.lines)
        ):
            assert first.proc.poll() is None, "\n".join(first.lines)
            time.sleep(0.01)
        offset = time.monotonic() - launched
        asked = time.monotonic()
        refused = run_cmd(second, root, env, check=False)
        answered_s = time.monotonic() - asked
        code = first.proc.wait(timeout=600)
        print(f"concurrency trial {group}.{trial}: {' '.join(second)} at {offset:.2f} s -> exit "
              f"{refused.returncode} in {answered_s:.2f} s; first exit {code}")  # fmt: skip
        lines = (refused.stdout + refused.stderr).strip().splitlines()
        assert refused.returncode == 7, lines
        assert len(lines) == 1, lines
        assert lines[0].startswith(
            f"error: this checkout is in use by ./pipeline repro --force (PID {first.proc.pid}, started "
        ), lines
        assert answered_s < 5
        assert code == 0, "\n".join(first.lines)
        assert _results(root) == references[which], f"trial {trial}: not the bytes of an undisturbed run"
        assert _dvc_status_clean(root, env)
        newest = _newest_execution(uri)
        assert newest.info.status == "FINISHED"
        assert newest.data.params["train.lr"] == LR[which]
        _settle(root)


@pytest.mark.parametrize("group", range(KILL_GROUPS))
def test_after_kill_9_at_any_point_the_next_repro_recovers(tmp_path_factory, references, group):
    """Five trials: `./pipeline repro --force` with a new learning rate, SIGKILLed at a random point (0-0.8 s
    after its start or after a randomly chosen stage starts; alone, as the OOM killer does, or with its
    process group, as a CI timeout does). The next `./pipeline repro`
    says in one line what it did with the dead run's snapshot, stops its leftover stage, and ends with the
    bytes of an undisturbed run, `dvc status` clean, no run left RUNNING and nothing left behind."""
    root, env = _ready_clone(tmp_path_factory, references)
    rng = random.Random(2000 + group)  # noqa: S311 (timings, not secrets)
    for trial in range(5):
        which = "B" if trial % 2 == 0 else "A"
        _set_lr(root, which)
        after = rng.choice(("start", *STAGES))
        delay = rng.uniform(0, 0.8)
        whole_group = trial % 2 == 1
        background = Background(["./pipeline", "repro", "--force"], root, env)  # a process group of its own
        run = background.proc
        started = time.monotonic()
        if after != "start":
            background.wait_for(f"Running stage '{after}'", 300)
        time.sleep(delay)
        at = time.monotonic() - started
        assert run.poll() is None, f"trial {trial}: the run ended before {delay:.2f} s into {after}"
        if whole_group:
            os.killpg(run.pid, signal.SIGKILL)
        else:
            os.kill(run.pid, signal.SIGKILL)
        run.wait()
        record_path = root / RECORD
        record = json.loads(record_path.read_text()) if record_path.exists() else None

        recovery = run_cmd(["./pipeline", "repro"], root, env)
        said = [line for line in recovery.stderr.splitlines() if line.startswith("repro: the previous run")]
        print(f"kill trial {group}.{trial}: {'group' if whole_group else 'PID'} {delay:.2f} s after {after} "
              f"({at:.2f} s), "
              f"state {record and record['state']!r}: {said}")  # fmt: skip
        if record is None:  # killed before it took the checkout: nothing to recover
            assert said == []
        else:
            assert len(said) == 1, recovery.stderr
            assert said[0].startswith(f"repro: the previous run, ./pipeline repro --force (PID {run.pid}, started ")
        assert _results(root) == references[which]
        assert _dvc_status_clean(root, env)
        assert "RUNNING" not in {r.info.status for r in stored_runs(env["MLFLOW_TRACKING_URI"])}
        assert _adaline_processes(root) == []
        _settle(root)


def _adaline_processes(root: Path) -> list[str]:
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline", "cwd"]):
        try:
            if proc.info["cwd"] == str(root) and "adaline_repro" in " ".join(proc.info["cmdline"] or []):
                found.append(" ".join(proc.info["cmdline"]))
        except psutil.Error:
            continue
    return found


def test_runs_a_killed_run_left_running_are_marked_killed_by_the_next_run(tmp_path_factory, references):
    """The whole run is SIGKILLed while its track stage logs: its MLflow runs stay RUNNING. The next
    `./pipeline repro` marks exactly those KILLED and says how many; a RUNNING run of another checkout in
    the same store is left alone."""
    root, env = make_clone(tmp_path_factory)
    uri = env["MLFLOW_TRACKING_URI"]
    run_cmd(["./pipeline", "repro"], root, env)
    client = mlflow.MlflowClient(uri)
    other = client.create_run(
        client.get_experiment_by_name("adaline-backends").experiment_id,
        tags={"adaline.checkout": "elsewhere:/srv/adaline", "adaline.process": "1:1.00"},
    ).info.run_id
    _set_lr(root, "B")
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
    assert _results(root) == references["B"]
    assert _dvc_status_clean(root, env)


def _running(client: mlflow.MlflowClient, besides: str) -> int:
    experiments = [e.experiment_id for e in client.search_experiments()]
    running = client.search_runs(experiments, "attributes.status = 'RUNNING'")
    return len([r for r in running if r.info.run_id != besides])


def test_queued_experiments_run_beside_a_repro_and_queueing_waits_for_the_workspace(tmp_path_factory, references):
    """A queued experiment runs in its own copy while `./pipeline repro --force` holds the checkout, and
    both complete with their own results; queueing a new one meanwhile is refused, since DVC stashes the
    workspace and writes params.yaml into it while it queues."""
    from bench import sweep

    from tests.conftest import assert_each_experiment_logged_once

    root, env = make_clone(tmp_path_factory)
    run_cmd(["./pipeline", "repro"], root, env)
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
    assert _results(root) == references["A"]
    assert _dvc_status_clean(root, env)

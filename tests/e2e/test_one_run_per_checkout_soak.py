"""The soak tier of the shared-machine trials (`./pipeline test --soak`, and nightly in GitHub Actions): two
runs started in one checkout at random offsets, `kill -9` at random points. Trials draw their timings from
fixed seeds (reproducible) and print them (`pytest -s`); docs/reliability.md reports the counts. The fixed
trials of each case run in every `./pipeline test`: test_one_run_per_checkout.py."""

from __future__ import annotations

import random
import time

import pytest

from adaline_repro.repro.checkout_run import RECORD
from tests.conftest import Background, stored_runs
from tests.e2e import trials

pytestmark = pytest.mark.soak

GROUPS = 4  # of five concurrency trials each: 20, spread over the test workers
KILL_GROUPS = 2  # of five kill trials each: 10
STAGES, LAST_STAGE, SECOND_COMMANDS, LR = trials.STAGES, trials.LAST_STAGE, trials.SECOND_COMMANDS, trials.LR


@pytest.mark.parametrize("group", range(GROUPS))
def test_a_second_run_always_refuses_and_the_first_always_completes_with_its_own_bytes(ran_clone, reference_b, group):
    """Five trials: `./pipeline repro --force` with a new learning rate, and at a random offset (0-10 s, or
    when the last stage starts if that comes first, so that it is still running) a second `./pipeline repro
    --force`, `check --update` or `dvc exp run`. The second refuses at once with one line naming the first
    and exit 7; the first completes with exactly the bytes of an undisturbed run, vouched by dvc.lock and
    logged."""
    root, env = ran_clone
    references = trials.references(root, reference_b)
    rng = random.Random(1000 + group)  # noqa: S311 (timings, not secrets)
    for trial in range(5):
        which = "B" if trial % 2 == 0 else "A"
        trials.set_lr(root, which)
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
        code, answered_s = trials.second_refused_first_completes(root, env, references, which, first, second)
        print(f"concurrency trial {group}.{trial}: {' '.join(second)} at {offset:.2f} s -> exit {code} in "
              f"{answered_s:.2f} s")  # fmt: skip


@pytest.mark.parametrize("group", range(KILL_GROUPS))
def test_after_kill_9_at_any_point_the_next_repro_recovers(ran_clone, reference_b, group):
    """Five trials: `./pipeline repro --force` with a new learning rate, SIGKILLed at a random point (0-0.8 s
    after its start or after a randomly chosen stage starts; alone, as the OOM killer does, or with its
    process group, as a CI timeout does). The next `./pipeline repro`
    says in one line what it did with the dead run's snapshot, stops its leftover stage, and ends with the
    bytes of an undisturbed run, `dvc status` clean, no run left RUNNING and nothing left behind."""
    root, env = ran_clone
    references = trials.references(root, reference_b)
    rng = random.Random(2000 + group)  # noqa: S311 (timings, not secrets)
    for trial in range(5):
        which = "B" if trial % 2 == 0 else "A"
        trials.set_lr(root, which)
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
        record = trials.kill_9(root, run, whole_group)
        recovery, said = trials.recover(root, env)
        print(f"kill trial {group}.{trial}: {'group' if whole_group else 'PID'} {delay:.2f} s after {after} "
              f"({at:.2f} s), "
              f"state {record and record['state']!r}: {said}")  # fmt: skip
        if record is None:  # killed before it took the checkout: nothing to recover
            assert said == []
        else:
            assert len(said) == 1, recovery.stderr
            assert said[0].startswith(f"repro: the previous run, ./pipeline repro --force (PID {run.pid}, started ")
        assert trials.results(root) == references[which]
        assert trials.dvc_status_clean(root, env)
        assert "RUNNING" not in {r.info.status for r in stored_runs(env["MLFLOW_TRACKING_URI"])}
        trials.settled(root)

"""Queued experiments against the embedded store: 2 experiments, 2 workers, DVC's temporary copies, one
SQLite file at the repository root that did not exist before (the two race to create it)."""

from __future__ import annotations

import re

from bench import sweep

from tests.conftest import assert_each_experiment_logged_once, make_clone


def test_queued_experiments_on_two_workers_log_once_each_to_the_embedded_store(tmp_path_factory):
    root, env = make_clone(tmp_path_factory)
    env.pop("MLFLOW_TRACKING_URI")  # the repository's own mlflow.db, which queued copies must find
    assert not (root / "mlflow.db").exists()
    names = [f"seed-{seed}" for seed in range(200, 202)]  # one a worker: both create the store at once
    sweep.enqueue(root, env, {name: [f"train.seed={name.rsplit('-', 1)[1]}"] for name in names})
    result = sweep.run(root, env, names, jobs=2, timeout_s=1200)
    print(f"{len(names)} queued experiments against the embedded store: {result.wall_s:.1f} s")
    failed = {n: sweep.logs(root, env, n)[-3000:] for n, s in result.status.items() if s == "Failed"}
    assert result.succeeded == sorted(names), (result.ended, result.status, failed)
    assert_each_experiment_logged_once(f"sqlite:///{root}/mlflow.db", names, ("manual", "autograd", "module"), 20)
    assert not list((root / ".dvc" / "tmp" / "exps").rglob("mlflow.db")), "a queued copy made a store of its own"
    for name in names:
        log = sweep.logs(root, env, name)
        assert "track: logged run" in log, log
        assert not re.search(r"ERROR|Traceback|database is locked", log), log

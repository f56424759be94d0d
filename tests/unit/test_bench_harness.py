"""The benchmark harness's arithmetic (bench/harness.py), `./pipeline bench` starting it, and the sweep's floor
computing what the sweep computes."""

from __future__ import annotations

from bench import harness


def test_ratios_pair_interleaved_runs():
    """Ratios are taken run by run (A_i / B_i), so drift of the machine over time cancels."""
    r = harness.ratio([2.0, 4.0, 3.0], [1.0, 2.0, 3.0])
    assert r == {"median": 2.0, "min": 1.0, "max": 2.0, "n": 3}


def test_the_bench_command_starts(capfd):
    """`./pipeline bench` imports its harness (bench/bench.py and bench/sweep.py) and checks its arguments."""
    from adaline_repro import cli

    assert cli.main(["bench", "--only", "nosuch"]) == 2
    assert "unknown scenarios ['nosuch']" in capfd.readouterr().err


def test_the_sweep_floor_computes_the_verdicts_the_sweep_s_trials_do(tmp_path):
    """The floor (bench/sweep_floor.py: in memory, no files) is the same arithmetic as a trial."""
    from bench.sweep_floor import one

    from adaline_repro.core.checkout import pipeline_paths
    from adaline_repro.dvc_support.overrides import Overrides
    from adaline_repro.stages import fetch, prepare
    from adaline_repro.sweep import trial
    from adaline_repro.sweep.grid import trial_params, trials
    from tests.conftest import REPO

    applied = Overrides((REPO / "params.yaml").read_text())
    chosen = trials(applied, ["train.lr=0.01,0.6,1.0", "train.batch_size=7,35"])
    # the fetch stage's text, as a trial writes it (a clean clone has no data/raw/ until a repro)
    raw_csv = tmp_path / "iris.csv"
    raw_csv.write_text(fetch.fetch(trial_params(applied, chosen[0].overrides).fetch), encoding="utf-8")
    raw = prepare.read_raw(raw_csv)
    seen = set()
    for t in chosen:
        record = trial.execute(t, applied, pipeline_paths(REPO))
        expected = None if record.error else record.report.passed
        assert one(trial_params(applied, t.overrides), raw) == expected, t.overrides
        seen.add(expected)
    assert seen == {True, False, None}  # agreeing, differing and failed trials all held to the sweep

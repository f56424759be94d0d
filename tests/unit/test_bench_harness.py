"""The benchmark harness's arithmetic (bench/harness.py), and `./pipeline bench` starting it."""

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

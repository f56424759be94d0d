"""Command line: options after `test` and `repro` go to pytest and dvc untouched."""

from __future__ import annotations

from adaline_repro.cli import main


def test_options_after_test_reach_pytest(capfd):
    """`./pipeline test --collect-only -q FILE` lists that file's tests instead of failing in argparse."""
    assert main(["test", "--collect-only", "-q", "tests/test_locations.py"]) == 0
    out = capfd.readouterr().out
    assert "tests/test_locations.py::test_environment_tracking_uri_wins" in out


def test_a_missing_input_is_one_line_and_exit_2(tmp_path, capsys):
    """A stage pointed at a file that is not there says which file, without a traceback, and exits 2."""
    missing = tmp_path / "train.csv"
    model, curve = tmp_path / "m.json", tmp_path / "c.csv"
    code = main(["train", "--backend", "manual", "--train", str(missing), "--model", str(model), "--curve", str(curve)])
    assert code == 2
    assert capsys.readouterr().err == f"error: [Errno 2] No such file or directory: '{missing}'\n"
    assert not model.exists()
    assert not curve.exists()

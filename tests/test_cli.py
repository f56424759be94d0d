"""Command line: options after `test` and `repro` go to pytest and dvc untouched."""

from __future__ import annotations

from adaline_repro.cli import main


def test_options_after_test_reach_pytest(capfd):
    """`./pipeline test --collect-only -q FILE` lists that file's tests instead of failing in argparse."""
    assert main(["test", "--collect-only", "-q", "tests/test_locations.py"]) == 0
    out = capfd.readouterr().out
    assert "tests/test_locations.py::test_environment_tracking_uri_wins" in out


def test_unknown_backend_is_an_input_error(capsys):
    """Asking to train a backend that params.yaml does not list exits 2 with one line."""
    code = main(["train", "--backend", "nope", "--train", "x", "--model", "y", "--curve", "z"])
    assert code == 2
    assert (
        capsys.readouterr().err
        == "error: train: backend 'nope' is not in train.backends ['manual', 'autograd', 'module']\n"
    )

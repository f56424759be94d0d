"""Command line: options after `test` reach pytest; the project's own errors are one line with their exit
code; anything else is a bug that shows its traceback and exits EXIT_BUG; `--help` speaks to a user."""

from __future__ import annotations

import os

import pytest

from adaline_repro import cli
from adaline_repro.core import errors
from adaline_repro.core.errors import (
    EXIT_BUG,
    EXIT_INPUT,
    EXIT_STORE,
    EXIT_WRITE,
    InputError,
    ReproError,
    StoreError,
    WriteError,
)
from adaline_repro.ops import devtools


def test_options_after_test_reach_pytest(capfd):
    """`./pipeline test --collect-only -q FILE` lists that file's tests instead of failing in argparse."""
    assert cli.main(["test", "--collect-only", "-q", "-n", "0", "tests/unit/core/test_tracking_uri.py"]) == 0
    out = capfd.readouterr().out
    assert "tests/unit/core/test_tracking_uri.py::test_environment_tracking_uri_wins" in out


@pytest.mark.parametrize(
    ("given", "pytest_gets"),
    [
        ([], ["-n", "2", "-m", "not soak"]),  # the soak trials are left out of ./pipeline test
        (["--soak"], ["-n", "2", "-m", "soak"]),  # and run alone with --soak
        (["--fast", "-k", "x"], ["-n", "2", "-k", "x", "-m", "not soak", "tests/unit"]),
        (["-m", "e2e", "-x"], ["-n", "2", "-m", "e2e", "-x"]),  # -m replaces the tier's selection
    ],
)
def test_each_tier_selects_its_tests(given, pytest_gets):
    assert devtools.pytest_command(["-n", "2", *given]) == pytest_gets


def test_workers_steal_work_unless_told_how_many():
    assert devtools.pytest_command([])[:4] == ["-n", str(min(4, len(os.sched_getaffinity(0)))), "--dist", "worksteal"]


def test_a_missing_input_is_one_line_and_exit_2(tmp_path, capsys):
    """A stage pointed at a file that is not there says which file, without a traceback, and exits 2."""
    missing = tmp_path / "train.csv"
    model, curve, steps = tmp_path / "m.json", tmp_path / "c.csv", tmp_path / "s.csv"
    code = cli.main(
        [
            "stage",
            "train",
            "--backend",
            "manual",
            "--train",
            str(missing),
            "--model",
            str(model),
            "--curve",
            str(curve),
            "--steps",
            str(steps),
        ]
    )
    assert code == EXIT_INPUT
    assert capsys.readouterr().err == f"error: {missing}: cannot read (No such file or directory)\n"
    assert not model.exists()
    assert not curve.exists()
    assert not steps.exists()


@pytest.mark.parametrize(
    ("raised", "code"),
    [
        (InputError("bad thing"), EXIT_INPUT),
        (StoreError("store down"), EXIT_STORE),
        (WriteError("metrics/manual.json: cannot write (No space left on device)"), EXIT_WRITE),
    ],
)
def test_own_errors_are_one_line_with_their_exit_code(monkeypatch, capsys, raised, code):
    """An error type of the project becomes `error: <message>` and its class's exit code, no traceback; a
    file that could not be written is not the user's bad input (exit 74, not 2)."""

    def fail(args):
        raise raised

    monkeypatch.setattr(cli, "_ui", fail)
    assert cli.main(["ui"]) == code
    assert capsys.readouterr().err == f"error: {raised}\n"


@pytest.mark.parametrize("bug", [KeyError("weights"), ValueError("bad shape"), OSError(5, "I/O error")])
def test_anything_else_is_a_bug_with_its_traceback(monkeypatch, capsys, bug):
    """A KeyError, ValueError or OSError from our code is not the user's mistake: traceback, exit EXIT_BUG."""

    def fail(args):
        raise bug

    monkeypatch.setattr(cli, "_ui", fail)
    assert cli.main(["ui"]) == EXIT_BUG
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert f"{type(bug).__name__}: " in err
    assert err.splitlines()[-1] == f"error: unexpected failure (a bug; exit {EXIT_BUG}), traceback above"


def test_exit_codes_are_distinct_and_every_error_type_uses_one():
    """Each exit code means one thing, and every error type of the project exits with one of them."""
    codes = {k: v for k, v in vars(errors).items() if k.startswith("EXIT_")}
    assert len(set(codes.values())) == len(codes)

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    import adaline_repro.ops.check, adaline_repro.ops.postgres, adaline_repro.tracking.execution  # noqa: E401, F401, I001

    for error_type in subclasses(ReproError):
        assert error_type.exit_code in codes.values(), error_type


def test_help_speaks_to_a_user_first(capsys):
    """What the project is and where to start, then the commands; not how the dispatching works."""
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = capsys.readouterr().out
    assert text.splitlines()[0].startswith("usage: ./pipeline")
    assert "ADALINE trained three ways" in text
    assert "Start with `./pipeline repro`" in text
    assert "dispatch" not in text.lower()
    for command in ("repro", "test", "ui", "check", "sweep", "server", "dvc", "stage"):
        assert f"    {command} " in text or f"    {command}\n" in text, command

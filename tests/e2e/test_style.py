"""The tree stays lint-clean and formatted (ruff, configured in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

TREES = ("src", "tests", "bench")


def _ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ruff", *args, *TREES], cwd=REPO, capture_output=True, text=True)


def test_ruff_lint_is_clean():
    done = _ruff("check")
    assert done.returncode == 0, done.stdout


def test_ruff_format_is_clean():
    done = _ruff("format", "--check")
    assert done.returncode == 0, done.stdout

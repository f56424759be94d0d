"""The tree stays lint-clean and formatted (ruff, configured in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys

from .conftest import REPO


def test_ruff_lint_is_clean():
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "src", "tests"], cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout


def test_ruff_format_is_clean():
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "src", "tests"], cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout

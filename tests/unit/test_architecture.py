"""The layers of pyproject.toml's import-linter contracts hold, and they are not vacuous: a cycle like the
one compare and track once had, the foundation importing a stage, a stage importing the repro wrapper, or
the check reaching up into the sweep breaks them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint(root: Path) -> subprocess.CompletedProcess:
    """`lint-imports` over the package below root/src, with root/pyproject.toml's contracts."""
    env = {"PYTHONPATH": str(root / "src"), "PATH": "/usr/bin:/bin"}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def test_the_package_keeps_every_contract():
    done = _lint(REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 kept, 0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        # Two modules of one layer importing each other, as compare and track once did.
        (
            "comparison/divergence.py",
            "from adaline_repro.comparison import report",
            "no import cycles between sibling modules, at any depth",
        ),
        ("core/checkout.py", "from adaline_repro.stages import fetch", "the layers, top to bottom"),
        ("backends/manual.py", "from adaline_repro.core import files", "the layers, top to bottom"),
        ("stages/fetch.py", "from adaline_repro.repro import command", "the layers, top to bottom"),
        # The check (an operation) reaching up into the sweep that uses it.
        ("ops/check.py", "from adaline_repro.sweep import driver", "the layers, top to bottom"),
    ],
)
def test_an_import_against_the_architecture_breaks_a_contract(tmp_path, module, line, broken):
    shutil.copytree(REPO / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    path = tmp_path / "src" / "adaline_repro" / module
    path.write_text(path.read_text() + f"\n{line}  # noqa\n")
    done = _lint(tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{broken} BROKEN" in done.stdout, done.stdout

"""The benchmarks' single-script baseline reaches the lecture's accuracies."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_baseline_script_reaches_the_lecture_accuracies():
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "single_script.py"), "--no-mlflow"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    lines = done.stdout.splitlines()
    assert [line.split(" step_us")[0] for line in lines] == [
        f"{b}: train 0.9286 test 0.9333" for b in ("manual", "autograd", "module")
    ]

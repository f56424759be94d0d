"""Commands for working on the project: the tests (all, or the fast tier), the linter, the benchmarks, the
lock file."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
FAST_TIER = "tests/unit"


def test(pytest_args: list[str]) -> int:
    """`./pipeline test [--fast | --soak] [pytest args]`: the suite less the soak tier; `--fast`: only the unit
    tier; `--soak`: only the soak tier (randomized trials repeated many times, nightly in GitHub Actions).

    All run in parallel (pytest-xdist, one worker per core, at most 4): every end-to-end test works in its
    own temporary clone, store and ports. `-n N` overrides the number of workers (`-n 0`: none); `-m`
    replaces the tier's selection.
    """
    args = list(pytest_args)
    tier = next((a for a in args if a in ("--fast", "--soak")), None)
    args = [a for a in args if a not in ("--fast", "--soak")]
    if not any(a == "-n" or a.startswith(("-n", "--numprocesses")) for a in args):
        workers = max(1, min(4, len(os.sched_getaffinity(0))))
        args = ["-n", str(workers), *args]
    if "-m" not in args:
        args += ["-m", "soak" if tier == "--soak" else "not soak"]
    return subprocess.call([sys.executable, "-m", "pytest", *args, *([FAST_TIER] if tier == "--fast" else [])])


def lint() -> int:
    """ruff's lint and format check over the code, the tests and the benchmarks (pyproject.toml has the rules)."""
    trees = [str(REPO / t) for t in ("src", "tests", "bench")]
    ruff = [sys.executable, "-m", "ruff"]
    checked = subprocess.call([*ruff, "check", *trees])
    return checked or subprocess.call([*ruff, "format", "--check", *trees])


def bench(bench_args: list[str]) -> int:
    # As a module of the repository root: run as a script, bench/bench.py would shadow the bench/ folder
    # it imports sweep from.
    return subprocess.call([sys.executable, "-m", "bench.bench", *bench_args], cwd=REPO)


def lock() -> int:
    """Regenerate requirements.lock from requirements.in in a throw-away venv."""
    with tempfile.TemporaryDirectory() as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip"]
        subprocess.run([*pip, "install", "-q", "-r", str(REPO / "requirements.in")], check=True)
        frozen = subprocess.run([*pip, "freeze"], check=True, capture_output=True, text=True).stdout
    lines = [line.replace("+cpu", "") for line in frozen.splitlines() if line and not line.startswith("-e ")]
    header = "# Generated from requirements.in by ./pipeline lock (pip freeze of a fresh venv). Do not edit by hand."
    (REPO / "requirements.lock").write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    print(f"lock: {len(lines)} packages pinned in requirements.lock")
    return 0

"""Commands for working on the project: the tests (all, or the fast tier), the linter, the benchmarks (the
lock file: lock.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
FAST_TIER = "tests/unit"


def test(pytest_args: list[str]) -> int:
    """`./pipeline test [--fast | --soak] [pytest args]`: the suite less the soak tier; `--fast`: only the unit
    tier; `--soak`: only the soak tier (randomized trials repeated many times, nightly in GitHub Actions)."""
    return subprocess.call([sys.executable, "-m", "pytest", *pytest_command(pytest_args)])


def pytest_command(args: list[str]) -> list[str]:
    """pytest's arguments for `./pipeline test ARGS`. Every tier runs in parallel (pytest-xdist, one worker
    per core, at most 4, work-stealing): every end-to-end test works in its own temporary clone, store and
    ports. `-n N` overrides the number of workers (`-n 0`: none); `-m` replaces the tier's selection."""
    tier = next((a for a in args if a in ("--fast", "--soak")), None)
    args = [a for a in args if a not in ("--fast", "--soak")]
    if not any(a == "-n" or a.startswith(("-n", "--numprocesses")) for a in args):
        workers = max(1, min(4, len(os.sched_getaffinity(0))))
        # worksteal: an idle worker takes queued tests from a busy one, so a few long end-to-end tests
        # at the end do not leave the other core idle.
        args = ["-n", str(workers), "--dist", "worksteal", *args]
    if "-m" not in args:
        args += ["-m", "soak" if tier == "--soak" else "not soak"]
    return [*args, *([FAST_TIER] if tier == "--fast" else [])]


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

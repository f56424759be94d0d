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


RUNTIME_LOCK, DEV_LOCK = "requirements.lock", "requirements-dev.lock"
_COMPILE = ["-m", "piptools", "compile", "--quiet", "--generate-hashes", "--strip-extras", "--allow-unsafe",
            "--no-header", "--resolver=backtracking",
            # This machine's local package folders (its pip configuration) mean nothing elsewhere.
            "--no-emit-index-url", "--no-emit-find-links"]  # fmt: skip


def lock() -> int:
    """Regenerate requirements.lock (what a run needs) and requirements-dev.lock (what the tests and the
    linter add) from their .in files, every file with its sha256 so pip installs with --require-hashes.

    pip-compile resolves with pip itself, so it takes the torch wheel this machine's pip configuration
    points at, as `./pipeline` does; run it on a project machine (elsewhere torch resolves to another
    build, with other hashes).
    """
    with tempfile.TemporaryDirectory() as tmp:
        runtime, dev = Path(tmp) / RUNTIME_LOCK, Path(tmp) / "dev-full.lock"
        # Fresh resolutions: pip-compile would otherwise keep the pins of the files it rewrites.
        subprocess.run([sys.executable, *_COMPILE, "-o", str(runtime), "requirements.in"], check=True,
                       cwd=REPO)  # fmt: skip
        (REPO / RUNTIME_LOCK).write_text(_header("requirements.in") + runtime.read_text(), encoding="utf-8")
        subprocess.run([sys.executable, *_COMPILE, "-o", str(dev), "requirements-dev.in"], check=True,
                       cwd=REPO)  # fmt: skip
        pinned = {name for name, _ in _entries(runtime.read_text())}
        added = [text for name, text in _entries(dev.read_text()) if name not in pinned]
        (REPO / DEV_LOCK).write_text(_header("requirements-dev.in") + "".join(added), encoding="utf-8")
    print(f"lock: {len(pinned)} packages in {RUNTIME_LOCK}, {len(added)} more in {DEV_LOCK}")
    return 0


def _header(source: str) -> str:
    return f"# Generated from {source} by ./pipeline lock (pip-compile --generate-hashes). Do not edit by hand.\n"


def _entries(text: str) -> list[tuple[str, str]]:
    """(normalized name, its lines: the pin, its hashes and pip-compile's `# via` notes) of a compiled lock."""
    entries: list[tuple[str, str]] = []
    for line in text.splitlines(keepends=True):
        if line[:1].isalnum():
            name = line.split("==", 1)[0].strip().lower().replace("_", "-").replace(".", "-")
            entries.append((name, line))
        elif entries:
            entries[-1] = (entries[-1][0], entries[-1][1] + line)
    return entries

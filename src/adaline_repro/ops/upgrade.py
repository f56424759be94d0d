"""The venv `./pipeline check --with SPEC` runs in: exactly the files pip resolved for those versions
(versions.py), built once per set of files (the cache key) under the user's cache, and never written into
the repository's .venv; and the new versions' first run there, the environment's fingerprint."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from adaline_repro.core.files import atomic_write_text, json_text
from adaline_repro.ops import versions
from adaline_repro.ops.lock import RUNTIME_LOCK
from adaline_repro.ops.versions import Change, InstallFailed, Pinned

MARKER = ".check-with.json"  # in a venv this module built; ./pipeline uses such a venv as it is (no set-up)


@dataclass(frozen=True)
class ScratchVenv:
    path: Path
    specs: tuple[str, ...]  # as given on the command line
    changes: tuple[Change, ...]
    released: tuple[str, ...]  # lock pins dropped because they and the new versions exclude each other
    reused: bool  # found in the cache, not built by this run
    torch_index: str | None  # PyTorch's CPU index, when pip was given it

    def to_json(self) -> dict:
        return {
            "specs": list(self.specs),
            "changes": [c.to_json() for c in self.changes],
            "released": list(self.released),
            "venv": str(self.path),
            "reused": self.reused,
            "torch_index": self.torch_index,
        }


def cache_root() -> Path:
    """Where the venvs are kept: ADALINE_CHECK_VENVS, else the user's cache (they are GBs: not in the repo)."""
    if folder := os.environ.get("ADALINE_CHECK_VENVS"):
        return Path(folder)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "adaline-repro" / "check-venvs"


def prepare(repo: Path, texts: list[str], say: Callable[[str], None]) -> ScratchVenv:
    """Resolve, then build (or reuse) the venv holding exactly what pip resolved."""
    wanted = versions.requested(texts, repo)
    pins = versions.locked(repo)
    index = versions.torch_index(pins, say)
    say(f"check --with: resolving {', '.join(map(str, wanted))} against the rest of {RUNTIME_LOCK} with pip")
    resolved, released = versions.resolve(repo, wanted, pins, index, say)
    changes = tuple(versions.changes(pins, resolved))
    say("check --with: " + ("; ".join(map(str, changes)) or "no version differs from the lock"))
    try:
        venv, reused = build(resolved, {"specs": texts, "changes": [str(c) for c in changes]}, say)
    except InstallFailed as failed:
        raise InstallFailed(failed.line, failed.log, changes) from None
    return ScratchVenv(venv, tuple(texts), changes, tuple(released), reused, index[-1] if index else None)


def environment(venv: ScratchVenv) -> dict:
    """The fingerprint as the venv's own Python sees it (its torch and numpy): fingerprint.py run there.
    That it runs at all is the first test of the new versions: a venv whose torch or numpy does not
    import fails here, with its last line."""
    command = [str(venv.path / "bin" / "python"), "-m", "adaline_repro.ops.fingerprint"]
    done = subprocess.run(command, capture_output=True, text=True)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    if done.returncode != 0:
        why = lines[-1] if lines else f"exit {done.returncode}"
        raise InstallFailed(f"the new versions do not run: {why}", done.stderr[-4000:], venv.changes)
    return json.loads(done.stdout.splitlines()[-1])  # the last line: a library may print on import


def build(resolved: list[Pinned], record: dict, say: Callable[[str], None]) -> tuple[Path, bool]:
    """The venv holding exactly `resolved` (by URL; hash-checked when every file's sha256 is known): from
    the cache when one holds the same files for this Python; else built, its marker written last, so a
    build that was stopped is built again, and one that failed is removed. (path, reused)."""
    files = sorted((p.name, p.version, p.url, p.sha256 or "") for p in resolved)
    key = hashlib.sha256(json.dumps([sys.version, platform.machine(), files]).encode()).hexdigest()[:16]
    venv = cache_root() / key
    venv.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(f"{venv}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        say(f"check --with: another check is building {venv}: waiting for it")
        lock.acquire()
    try:
        if (venv / MARKER).exists():
            say(f"check --with: using the venv built for these {len(files)} files ({venv})")
            return venv, True
        say(f"check --with: building a venv of {len(files)} packages in {venv} (once for this set; minutes)")
        shutil.rmtree(venv, ignore_errors=True)
        try:
            _install(venv, resolved)
        except (InstallFailed, OSError):
            shutil.rmtree(venv, ignore_errors=True)
            raise
        atomic_write_text(venv / MARKER, json_text({**record, "files": [list(f) for f in files]}))
        return venv, False
    finally:
        lock.release()


def _install(venv: Path, resolved: list[Pinned]) -> None:
    done = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True)
    if done.returncode != 0:
        raise InstallFailed(f"python -m venv {venv} failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}", "")
    hashed = all(p.sha256 for p in resolved)
    lines = [f"{p.name} @ {p.url}" + (f" --hash=sha256:{p.sha256}" if hashed else "") for p in resolved]
    (venv / "requirements.txt").write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    versions.pip(venv / "bin" / "python", ["install", "--no-deps", "-r", str(venv / "requirements.txt")])

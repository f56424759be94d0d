"""The venv `./pipeline check --with SPEC` runs in: requirements.lock with the named packages resolved anew by
pip's resolver, the rest of the lock kept as constraints where the new packages allow it. Built once per set
of files it holds (the cache key is what pip resolved), and never written into the repository's .venv.

The resolution is pip's own (`pip install --dry-run --report`): this module only says what to ask for, reads
pip's report, and installs exactly the files it names."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from adaline_repro.core.errors import InputError
from adaline_repro.core.files import atomic_write_text, json_text

LATEST = "latest"  # --with latest: every direct dependency (requirements.in) at its newest release
RUNTIME_LOCK, DIRECT = "requirements.lock", "requirements.in"
MARKER = ".check-with.json"  # in a venv this module built; ./pipeline uses such a venv as it is (no set-up)
TORCH_INDEX = "ADALINE_TORCH_INDEX"  # PyTorch's CPU index, exported by ./pipeline


class SpecError(InputError):
    def __init__(self, message: str) -> None:
        super().__init__(f"check --with: {message}")


class InstallFailed(Exception):
    """pip could not resolve or install what --with asks for: `line` is pip's own error line."""

    def __init__(self, line: str, log: str) -> None:
        super().__init__(line)
        self.line, self.log = line, log


@dataclass(frozen=True)
class Change:
    """One package whose version differs from requirements.lock's (None: absent on that side)."""

    name: str
    locked: str | None
    now: str | None

    def __str__(self) -> str:
        return f"{self.name}: {self.locked or 'not installed'} -> {self.now or 'not installed'}"


@dataclass(frozen=True)
class Pinned:
    """One file pip resolved: the package, its version, where it comes from and its sha256 when known."""

    name: str
    version: str
    url: str
    sha256: str | None
    requires: tuple[str, ...] = ()  # its metadata's Requires-Dist


@dataclass(frozen=True)
class ScratchVenv:
    path: Path
    specs: tuple[str, ...]  # as given on the command line
    changes: tuple[Change, ...]
    released: tuple[str, ...]  # lock pins dropped because the new packages' requirements exclude them
    reused: bool  # found in the cache, not built by this run

    def to_json(self) -> dict:
        return {
            "specs": list(self.specs),
            "changes": [{"name": c.name, "locked": c.locked, "now": c.now} for c in self.changes],
            "released": list(self.released),
            "venv": str(self.path),
            "reused": self.reused,
        }


def cache_root() -> Path:
    """Where the venvs are kept: ADALINE_CHECK_VENVS, else the user's cache (they are GBs: not in the repo)."""
    if folder := os.environ.get("ADALINE_CHECK_VENVS"):
        return Path(folder)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "adaline-repro" / "check-venvs"


def requested(texts: list[str], repo: Path) -> list[Requirement]:
    """The command line's specs as requirements: a pip requirement, a bare name (its newest release), or
    `latest` (every direct dependency's newest, except those another spec names). A package named twice
    is refused."""
    wanted: dict[str, Requirement] = {}
    for text in (t for t in texts if t.strip() != LATEST):
        try:
            req = Requirement(text)
        except InvalidRequirement as exc:
            raise SpecError(f"{text!r} is not a pip requirement ({exc})") from None
        name = canonicalize_name(req.name)
        if name in wanted:
            raise SpecError(f"{req.name} is named twice ({wanted[name]}, {req})")
        wanted[name] = req
    if any(t.strip() == LATEST for t in texts):
        for req in direct(repo):
            wanted.setdefault(canonicalize_name(req.name), Requirement(_unpinned(req)))
    return list(wanted.values())


def direct(repo: Path) -> list[Requirement]:
    """requirements.in's requirements: the direct dependencies."""
    lines = (repo / DIRECT).read_text(encoding="utf-8").splitlines()
    return [Requirement(line) for line in (raw.split("#")[0].strip() for raw in lines) if line]


def locked(repo: Path) -> dict[str, str]:
    """requirements.lock's pins that apply to this machine (markers evaluated): name -> version."""
    pins = {}
    for line in (repo / RUNTIME_LOCK).read_text(encoding="utf-8").splitlines():
        if line[:1].isalnum():
            req = Requirement(line.rstrip(" \\"))
            if req.marker is None or req.marker.evaluate():
                pins[canonicalize_name(req.name)] = next(iter(req.specifier)).version
    return pins


def prepare(repo: Path, texts: list[str], say: Callable[[str], None]) -> ScratchVenv:
    """Resolve, then build (or reuse) the venv holding exactly what pip resolved."""
    wanted = requested(texts, repo)
    pins = locked(repo)
    say(f"check --with: resolving {', '.join(map(str, wanted))} against the rest of {RUNTIME_LOCK} with pip")
    resolved, released = resolve(repo, wanted, pins, say)
    changes = tuple(_changes(pins, resolved))
    venv, reused = build(resolved, {"specs": texts, "changes": [str(c) for c in changes]}, say)
    say("check --with: " + ("; ".join(map(str, changes)) or "no version differs from the lock"))
    return ScratchVenv(venv, tuple(texts), changes, tuple(released), reused)


def resolve(
    repo: Path, wanted: list[Requirement], pins: dict[str, str], say: Callable[[str], None]
) -> tuple[list[Pinned], list[str]]:
    """What pip installs for the direct dependencies with `wanted` in their place, every other lock pin a
    constraint. When pip finds that impossible, the pins the new packages' own requirements exclude are
    released (their versions resolved anew too) and pip asked once more; (files, released names)."""
    index = _torch_index(pins, say)
    wanted = _newest(wanted, index)
    names = {canonicalize_name(r.name) for r in wanted}
    others = [r for r in direct(repo) if canonicalize_name(r.name) not in names]
    asked = [*map(str, wanted), *(_unpinned(r) for r in others)]
    constraints = {n: v for n, v in pins.items() if n not in names}
    try:
        return _pip_resolve(asked, constraints, index), []
    except InstallFailed:
        alone = _pip_resolve([str(r) for r in wanted], {}, index)
        released = sorted(n for n in constraints if _excluded(n, constraints[n], alone))
        if not released:
            raise
        say(f"check --with: releasing the lock's pins of {', '.join(released)} (the new versions exclude them)")
        kept = {n: v for n, v in constraints.items() if n not in released}
        return _pip_resolve(asked, kept, index), released


def _newest(wanted: list[Requirement], index: list[str]) -> list[Requirement]:
    """Bare names pinned to their newest releases (resolved together, free of the lock): with the lock's
    pins as constraints, pip would settle for the newest release those allow."""
    bare = [r for r in wanted if not r.specifier and r.url is None]
    if not bare:
        return wanted
    newest = {p.name: p.version for p in _pip_resolve([str(r) for r in bare], {}, index)}
    return [Requirement(_unpinned(r, newest[canonicalize_name(r.name)])) if r in bare else r for r in wanted]


def _unpinned(req: Requirement, version: str | None = None) -> str:
    """The requirement without its version (or pinned to `version`), extras and marker kept."""
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    pin = f"=={version}" if version else ""
    return f"{req.name}{extras}{pin}" + (f" ; {req.marker}" if req.marker else "")


def _excluded(name: str, version: str, resolved: list[Pinned]) -> bool:
    """Does a resolved package require `name` in a version that excludes `version`?"""
    for item in resolved:
        for req in map(Requirement, item.requires):
            applies = canonicalize_name(req.name) == name and (req.marker is None or req.marker.evaluate({"extra": ""}))
            if applies and not req.specifier.contains(version, prereleases=True):
                return True
    return False


def _pip_resolve(asked: list[str], constraints: dict[str, str], index: list[str]) -> list[Pinned]:
    with tempfile.TemporaryDirectory(prefix="adaline-resolve-") as folder:
        reqs, cons, report = (Path(folder) / n for n in ("requirements.txt", "constraints.txt", "report.json"))
        reqs.write_text("".join(f"{a}\n" for a in asked), encoding="utf-8")
        cons.write_text("".join(f"{n}=={v}\n" for n, v in sorted(constraints.items())), encoding="utf-8")
        command = ["install", "--dry-run", "--ignore-installed", "--report", str(report), "-r", str(reqs)]
        about = tuple(Requirement(a).name.lower() for a in asked)
        _pip(sys.executable, [*command, "-c", str(cons), *index], about)
        items = json.loads(report.read_text(encoding="utf-8"))["install"]
    return [_pinned(item) for item in items]


def _pinned(item: dict) -> Pinned:
    """One entry of pip's installation report."""
    info, meta = item["download_info"], item["metadata"]
    sha = info.get("archive_info", {}).get("hashes", {}).get("sha256")
    requires = tuple(meta.get("requires_dist", []))
    return Pinned(canonicalize_name(meta["name"]), meta["version"], info["url"], sha, requires)


def _pip(python: str | Path, args: list[str], about: tuple[str, ...] = ()) -> None:
    """Run pip; on failure raise InstallFailed with its one line: the last of its errors that names a
    package in `about` (pip's own summary, "No matching distribution found for numpy==0.0.1"), else its
    first error, and the whole log."""
    done = subprocess.run(
        [str(python), "-m", "pip", *args, "--quiet", "--disable-pip-version-check", "--no-input"],
        capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("ERROR:")]
        naming = [line for line in errors if any(name in line.lower() for name in about)]
        line = (naming[-1:] or errors or lines or [f"pip exited with {done.returncode}"])[0]
        raise InstallFailed(line, done.stderr[-4000:])


def _torch_index(pins: dict[str, str], say: Callable[[str], None]) -> list[str]:
    """PyTorch's CPU index as an extra index when this machine's lock takes torch's +cpu build: the newest
    CPU build wins there (2.15.0+cpu sorts above PyPI's 2.15.0). Only when it answers: pip retries an
    unreachable index for seconds on every request."""
    index = os.environ.get(TORCH_INDEX, "")
    if not pins.get("torch", "").endswith("+cpu") or not index:
        return []
    try:
        with urllib.request.urlopen(f"{index.rstrip('/')}/torch/", timeout=5):  # noqa: S310 (the configured index)
            return ["--extra-index-url", index]
    except OSError:
        say(f"check --with: PyTorch's CPU index ({index}) does not answer: torch from pip's configured sources")
        return []


def _changes(pins: dict[str, str], resolved: list[Pinned]) -> list[Change]:
    now = {p.name: p.version for p in resolved}
    names = sorted(set(pins) | set(now))
    return [Change(n, pins.get(n), now.get(n)) for n in names if pins.get(n) != now.get(n)]


def build(resolved: list[Pinned], record: dict, say: Callable[[str], None]) -> tuple[Path, bool]:
    """The venv holding exactly `resolved` (by URL, hash-checked where pip knew the hash): from the cache
    when one holds the same files for this Python; else built, its marker written last, so a build that
    was stopped is built again. (path, reused)."""
    files = sorted((p.name, p.version, p.url, p.sha256 or "") for p in resolved)
    key = hashlib.sha256(json.dumps([sys.version, platform.machine(), files]).encode()).hexdigest()[:16]
    venv = cache_root() / key
    venv.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{venv}.lock"):
        if (venv / MARKER).exists():
            say(f"check --with: using the venv built before for these {len(files)} files ({venv})")
            return venv, True
        shutil.rmtree(venv, ignore_errors=True)
        say(f"check --with: building a venv of {len(files)} packages in {venv} (once for this set; minutes)")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
        hashed = all(p.sha256 for p in resolved)
        lines = [f"{p.name} @ {p.url}" + (f" --hash=sha256:{p.sha256}" if hashed else "") for p in resolved]
        (venv / "requirements.txt").write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        _pip(venv / "bin" / "python", ["install", "--no-deps", "-r", str(venv / "requirements.txt")])
        atomic_write_text(venv / MARKER, json_text({**record, "files": [list(f) for f in files]}))
    return venv, False

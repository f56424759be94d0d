"""Which versions `./pipeline check --with` asks for, and what pip's own resolver makes of them
(`pip install --dry-run --report`): requirements.lock's direct dependencies with the named packages at the
versions asked, every other pin a constraint, and, where pip finds that impossible, the pins that conflict
with the new versions released. Resolving asks the package index each time. upgrade.py builds the venv."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from adaline_repro.core.errors import InputError
from adaline_repro.ops.lock import RUNTIME_LOCK, archive_sha256, local_path

LATEST = "latest"  # --with latest: every direct dependency (requirements.in) at its newest release
DIRECT = "requirements.in"
TORCH_INDEX = "ADALINE_TORCH_INDEX"  # PyTorch's CPU index, exported by ./pipeline
TORCH_BUILD = "ADALINE_TORCH"  # cuda: PyPI's build of torch, as ./pipeline's set-up takes it


class SpecError(InputError):
    def __init__(self, message: str) -> None:
        super().__init__(f"check --with: {message}")


class InstallFailed(Exception):
    """pip could not resolve or install what --with asks for, or the venv it built does not run: `line` says
    why (pip's own error line), `changes` the versions resolved when it got that far."""

    def __init__(self, line: str, log: str, changes: tuple[Change, ...] = ()) -> None:
        super().__init__(line)
        self.line, self.log, self.changes = line, log, changes


@dataclass(frozen=True)
class Change:
    """One package whose version differs from requirements.lock's (None: absent on that side)."""

    name: str
    locked: str | None
    now: str | None

    def __str__(self) -> str:
        return f"{self.name}: {self.locked or 'not installed'} -> {self.now or 'not installed'}"

    def to_json(self) -> dict:
        return {"name": self.name, "locked": self.locked, "now": self.now}


@dataclass(frozen=True)
class Pinned:
    """One file pip resolved: the package, its version, where it comes from and its sha256 when known."""

    name: str
    version: str
    url: str
    sha256: str | None
    requires: tuple[Requirement, ...] = ()  # its metadata's Requires-Dist that apply here, its extras included


def requested(texts: list[str], repo: Path) -> list[Requirement]:
    """The command line's specs as requirements: a pip requirement, a bare name (its newest release), or
    `latest` (every direct dependency's newest, except those another spec names). A direct dependency keeps
    requirements.in's extras. A package named twice, or a spec whose marker excludes this machine, is
    refused."""
    extras = {canonicalize_name(r.name): r.extras for r in direct(repo)}
    wanted: dict[str, Requirement] = {}
    for text in (t for t in texts if t.strip() != LATEST):
        try:
            req = Requirement(text)
        except InvalidRequirement as exc:
            raise SpecError(f"{text!r} is not a pip requirement ({exc})") from None
        name = canonicalize_name(req.name)
        if name in wanted:
            raise SpecError(f"{req.name} is named twice ({wanted[name]}, {req})")
        if req.marker is not None and not req.marker.evaluate():
            raise SpecError(f"{text!r}: its marker excludes this machine, so pip would install nothing")
        req.extras |= extras.get(name, set())
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
    """requirements.lock's pins that apply to this machine (markers evaluated): name -> version. With
    ADALINE_TORCH=cuda, torch's without its +cpu label, as ./pipeline installs it."""
    pins = {}
    for line in (repo / RUNTIME_LOCK).read_text(encoding="utf-8").splitlines():
        if line[:1].isalnum():
            req = Requirement(line.rstrip(" \\"))
            if req.marker is None or req.marker.evaluate():
                pins[canonicalize_name(req.name)] = next(iter(req.specifier)).version
    if os.environ.get(TORCH_BUILD) == "cuda" and "torch" in pins:
        pins["torch"] = Version(pins["torch"]).public
    return pins


def resolve(
    repo: Path, wanted: list[Requirement], pins: dict[str, str], index: list[str], say: Callable[[str], None]
) -> tuple[list[Pinned], list[str]]:
    """What pip installs for the direct dependencies with `wanted` in their place, every other lock pin a
    constraint. When pip finds that impossible, the pins that exclude the new versions, or that the new
    versions' own requirements exclude, are released (resolved anew too) and pip asked once more;
    (files, released names)."""
    wanted, alone = _newest(wanted, index)
    names = {canonicalize_name(r.name) for r in wanted}
    others = [r for r in direct(repo) if canonicalize_name(r.name) not in names]
    asked = [*map(str, wanted), *(_unpinned(r) for r in others)]
    constraints = {n: v for n, v in pins.items() if n not in names}
    try:
        return _pip_resolve(asked, constraints, index), []
    except InstallFailed:
        alone = alone or _pip_resolve([str(r) for r in wanted], {}, index)
        old = _pip_resolve([f"{n}=={v}" for n, v in constraints.items()], {}, index, deps=False)
        new = {p.name: p.version for p in alone}
        released = sorted({pin for _, pin in _conflicts(alone, constraints)} | {pin for pin, _ in _conflicts(old, new)})
        if not released:
            raise
        say(f"check --with: releasing the lock's pins of {', '.join(released)} (they and the new versions conflict)")
        kept = {n: v for n, v in constraints.items() if n not in released}
        return _pip_resolve(asked, kept, index), released


def _newest(wanted: list[Requirement], index: list[str]) -> tuple[list[Requirement], list[Pinned]]:
    """Bare names pinned to their newest releases (resolved together, free of the lock): with the lock's
    pins as constraints, pip would settle for the newest release those allow. Also that resolution, when
    every spec was a bare name (so it is theirs alone)."""
    bare = [r for r in wanted if not r.specifier and r.url is None]
    if not bare:
        return wanted, []
    found = _pip_resolve([str(r) for r in bare], {}, index)
    newest = {p.name: p.version for p in found}
    pinned = [Requirement(_unpinned(r, newest[canonicalize_name(r.name)])) if r in bare else r for r in wanted]
    return pinned, found if len(bare) == len(wanted) else []


def _unpinned(req: Requirement, version: str | None = None) -> str:
    """The requirement without its version (or pinned to `version`), extras and marker kept."""
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    pin = f"=={version}" if version else ""
    return f"{req.name}{extras}{pin}" + (f" ; {req.marker}" if req.marker else "")


def _conflicts(packages: Iterable[Pinned], versions: dict[str, str]) -> list[tuple[str, str]]:
    """(package, required name) wherever a package's requirements exclude the version `versions` holds."""
    return [
        (p.name, name)
        for p in packages
        for req in p.requires
        if (name := canonicalize_name(req.name)) in versions
        and not req.specifier.contains(versions[name], prereleases=True)
    ]


def _pip_resolve(asked: list[str], constraints: dict[str, str], index: list[str], deps: bool = True) -> list[Pinned]:
    """pip's resolution of `asked` (each a requirement, given as an argument so pip's errors name it)."""
    with tempfile.TemporaryDirectory(prefix="adaline-resolve-") as folder:
        cons, report = Path(folder) / "constraints.txt", Path(folder) / "report.json"
        cons.write_text("".join(f"{n}=={v}\n" for n, v in sorted(constraints.items())), encoding="utf-8")
        command = ["install", "--dry-run", "--ignore-installed", "--report", str(report), "-c", str(cons), *index]
        about = tuple(canonicalize_name(Requirement(a).name) for a in asked)
        pip(sys.executable, [*command, *([] if deps else ["--no-deps"]), *asked], about)
        items = json.loads(report.read_text(encoding="utf-8"))["install"]
    return [_pinned(item) for item in items]


def _pinned(item: dict) -> Pinned:
    """One entry of pip's installation report; a local archive's sha256 computed when pip gave none."""
    info, meta = item["download_info"], item["metadata"]
    extras = {"", *item.get("requested_extras", [])}
    requires = [Requirement(r) for r in meta.get("requires_dist", [])]
    applies = [r for r in requires if r.marker is None or any(r.marker.evaluate({"extra": e}) for e in extras)]
    return Pinned(canonicalize_name(meta["name"]), meta["version"], info["url"], archive_sha256(info), tuple(applies))


def pip(python: str | Path, args: list[str], about: tuple[str, ...] = ()) -> None:
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
        naming = [line for line in errors if any(name in line.lower().replace("_", "-") for name in about)]
        line = (naming[-1:] or errors or lines or [f"pip exited with {done.returncode}"])[0]
        raise InstallFailed(line, done.stderr[-4000:])


def torch_index(pins: dict[str, str], say: Callable[[str], None]) -> list[str]:
    """PyTorch's CPU index as an extra index when this machine's lock takes torch's +cpu build: the newest
    CPU build wins there (2.15.0+cpu sorts above PyPI's 2.15.0). Only when it answers: pip retries an
    unreachable index for seconds on every request."""
    index = os.environ.get(TORCH_INDEX, "")
    if "torch" not in pins or Version(pins["torch"]).local != "cpu" or not index:
        return []
    if _answers(f"{index.rstrip('/')}/torch/"):
        return ["--extra-index-url", index]
    say(f"check --with: PyTorch's CPU index ({index}) does not answer: torch from pip's configured sources")
    return []


def _answers(url: str) -> bool:
    """Does the index page answer (a local mirror: does its folder exist)?"""
    if (folder := local_path(url)) is not None:
        return folder.is_dir()
    try:
        with urllib.request.urlopen(url, timeout=5):  # noqa: S310 (the configured index, http or https)
            return True
    except OSError:
        return False


def changes(pins: dict[str, str], resolved: list[Pinned]) -> list[Change]:
    now = {p.name: p.version for p in resolved}
    names = sorted(set(pins) | set(now))
    return [Change(n, pins.get(n), now.get(n)) for n in names if pins.get(n) != now.get(n)]

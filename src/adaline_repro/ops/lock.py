"""`./pipeline lock`: requirements.lock and requirements-dev.lock, every file pinned by its sha256, for every
platform and Python the project sets up on.

pip-compile (pip-tools) resolves both trees here, with pip's configured sources, keeping the pins the locks
already hold (`--upgrade` resolves afresh). One resolution serves every platform: uv's universal resolution
of requirements.in (2026-12-06) adds packages only for Windows, which runs the project under WSL. torch is the
exception, its build differs by platform:

- Linux x86-64: PyTorch's CPU build (`+cpu`), found where pip is configured or on PyTorch's CPU index
  (ADALINE_TORCH_INDEX, which ./pipeline sets); PyPI's build there is CUDA's, several GB.
- macOS arm64 and Linux aarch64: PyPI's build of the same version, a CPU build on both.

torch's entry becomes one entry per build, with environment markers and the hash of every wheel pip finds for
the Pythons in PYTHONS; a comment names each file, and the header says which cells the lock covers.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import tomllib
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import Marker
from packaging.specifiers import SpecifierSet
from packaging.tags import mac_platforms
from packaging.utils import parse_wheel_filename

from adaline_repro.core.errors import InputError

REPO = Path(__file__).resolve().parents[3]
RUNTIME_LOCK, DEV_LOCK = "requirements.lock", "requirements-dev.lock"


def _pythons() -> tuple[str, ...]:
    """The CPython minor versions pyproject.toml's requires-python admits (its one home)."""
    allowed = SpecifierSet(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"])
    return tuple(f"3.{minor}" for minor in range(8, 30) if f"3.{minor}" in allowed)


PYTHONS = _pythons()
SDIST_ONLY = ("antlr4-python3-runtime",)  # hydra's (through DVC): published as source only, pure Python
_COMPILE = ["-m", "piptools", "compile", "--quiet", "--generate-hashes", "--strip-extras", "--allow-unsafe",
            "--no-header", "--resolver=backtracking",
            # This machine's local package folders (its pip configuration) mean nothing elsewhere.
            "--no-emit-index-url", "--no-emit-find-links"]  # fmt: skip


def _manylinux(arch: str, oldest: int, legacy: tuple[str, ...]) -> tuple[str, ...]:
    """Every tag a glibc 2.36 Linux (Debian 12) on `arch` accepts, newest first, down to the oldest glibc that
    manylinux defines for it (packaging lists them only for the machine it runs on)."""
    return (*(f"manylinux_2_{minor}_{arch}" for minor in range(36, oldest - 1, -1)), *legacy, f"linux_{arch}")


@dataclass(frozen=True)
class Platform:
    name: str
    marker: str  # the lock's environment marker for torch's entry on this platform
    environment: dict[str, str]  # what packaging evaluates markers with, as on such a machine
    tags: tuple[str, ...]  # every platform tag such a machine accepts (pip matches --platform exactly)
    cpu_build: bool  # torch's `+cpu` build (PyTorch's index); else PyPI's build, CPU-only there


PLATFORMS = (
    Platform("Linux x86-64", 'sys_platform == "linux" and platform_machine == "x86_64"',
             {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64"},
             _manylinux("x86_64", 5, ("manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64")),
             cpu_build=True),
    # macOS 14 is the oldest torch's wheels take; a newer Mac accepts all of these too.
    Platform("macOS arm64", 'sys_platform == "darwin" and platform_machine == "arm64"',
             {"sys_platform": "darwin", "platform_system": "Darwin", "platform_machine": "arm64"},
             tuple(mac_platforms((14, 0), "arm64")), cpu_build=False),
    Platform("Linux aarch64", 'sys_platform == "linux" and platform_machine == "aarch64"',
             {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "aarch64"},
             _manylinux("aarch64", 17, ("manylinux2014_aarch64",)), cpu_build=False),
)  # fmt: skip


@dataclass(frozen=True)
class Wheel:
    name: str
    sha256: str


def _fits(wheel_name: str, platform: Platform, python: str) -> bool:
    """Whether CPython `python` on `platform` installs this wheel (`cp312-cp312-macosx_14_0_arm64`)."""
    cp = f"cp{python.replace('.', '')}"
    return any(t.interpreter == cp and t.platform in platform.tags for t in parse_wheel_filename(wheel_name)[3])


def cell_environment(platform: Platform, python: str) -> dict[str, str]:
    """The marker environment of CPython `python` on `platform`."""
    cpython = {"implementation_name": "cpython", "platform_python_implementation": "CPython", "os_name": "posix"}
    return {**platform.environment, **cpython, "python_version": python, "python_full_version": f"{python}.0"}


def for_cell(lock_text: str, platform: Platform, python: str) -> str:
    """The lock's entries that such a machine installs, their markers evaluated and dropped: pip evaluates
    markers for the machine it runs on, whatever --platform says."""
    kept: list[str] = []
    keep = True
    for line in lock_text.splitlines(keepends=True):
        if line[:1].isalnum() and ";" in line:
            requirement, marker = line.split(";", 1)
            continuation = " \\\n" if line.rstrip().endswith("\\") else "\n"
            keep = Marker(marker.rstrip("\\\n ")).evaluate(cell_environment(platform, python))
            line = requirement.rstrip() + continuation
        elif line[:1].isalnum():
            keep = True
        if keep:
            kept.append(line)
    return "".join(kept)


def covered(lock_text: str) -> list[tuple[Platform, str]]:
    """The (platform, Python) cells the lock holds a torch wheel for, read from the files its comments name."""
    cells = []
    for platform in PLATFORMS:
        names = [line.split()[-1] for line in for_cell(lock_text, platform, PYTHONS[0]).splitlines()
                 if line.strip().startswith("# torch-")]  # fmt: skip
        for python in PYTHONS:
            if any(_fits(name, platform, python) for name in names):
                cells.append((platform, python))
    return cells


def find_wheel(pin: str, platform: Platform, python: str, index: str | None) -> Wheel | None:
    """The wheel pip would install for `pin` on that cell, from its configured sources (and `index`), by pip's
    installation report; None when there is none."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        command = [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed", "--no-deps",
                   "--only-binary=:all:", "--target", str(Path(tmp) / "target"), "--python-version", python,
                   "--implementation", "cp", *(f"--platform={tag}" for tag in platform.tags),
                   *(["--extra-index-url", index] if index else []), "--report", str(report), pin]  # fmt: skip
        if subprocess.run(command, capture_output=True, text=True).returncode != 0:
            return None
        info = json.loads(report.read_text())["install"][0]["download_info"]
    url, sha256 = info["url"], archive_sha256(info)
    if sha256 is None:
        raise InputError(f"lock: pip found {url} for {pin} with no sha256")
    return Wheel(urllib.parse.unquote(url.rsplit("/", 1)[-1]), sha256)


def local_path(url: str) -> Path | None:
    """The file or folder a `file:` URL names; None for any other URL."""
    return Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path)) if url.startswith("file:") else None


def archive_sha256(info: dict) -> str | None:
    """The sha256 of the file a pip report's `download_info` names: the index's, else computed for a file
    in a local folder (pip reads no hash there); None for what has none (a folder, a VCS checkout)."""
    sha256 = info.get("archive_info", {}).get("hashes", {}).get("sha256")
    path = local_path(info["url"])
    if sha256 is None and path is not None and path.is_file():
        sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    return sha256


def torch_entries(version: str, index: str) -> tuple[str, list[str]]:
    """(torch's entries for the lock, the cells left out). `version` has no local label (`2.13.0`)."""
    entries, missing = [], []
    for platform in PLATFORMS:
        pin = f"torch=={version}+cpu" if platform.cpu_build else f"torch=={version}"
        wheels = []
        for python in PYTHONS:
            wheel = find_wheel(pin, platform, python, index if platform.cpu_build else None)
            if wheel is None:
                missing.append(f"{platform.name} CPython {python}")
            else:
                wheels.append(wheel)
        if wheels:
            lines = [f"{pin} ; {platform.marker}", *(f"--hash=sha256:{w.sha256}" for w in wheels)]
            entries.append(" \\\n    ".join(lines) + "\n" + "".join(f"    # {w.name}\n" for w in wheels))
    return "".join(entries), missing


def lock(upgrade: bool = False) -> int:
    """Regenerate requirements.lock (what a run needs) and requirements-dev.lock (what the tests and the linter
    add) from their .in files; see the module's docstring."""
    index = os.environ["ADALINE_TORCH_INDEX"]  # ./pipeline sets it: its one home
    version = next(line.split("==", 1)[1].strip() for line in _read("requirements.in").splitlines()
                   if line.startswith("torch=="))  # fmt: skip
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    # pip-compile resolves torch's dependencies from the +cpu build: with PyTorch's index only if it is needed.
    extra = (
        []
        if find_wheel(f"torch=={version}+cpu", PLATFORMS[0], here, None)
        else ["--pip-args", f"--extra-index-url {index}"]
    )
    with tempfile.TemporaryDirectory() as tmp:
        runtime, dev = Path(tmp) / RUNTIME_LOCK, Path(tmp) / "dev-full.lock"
        if not upgrade:  # pip-compile keeps the pins of the file it writes; torch's entries are made below
            runtime.write_text(_without(_read(RUNTIME_LOCK), "torch"), encoding="utf-8")
            dev.write_text(_without(_read(RUNTIME_LOCK) + _read(DEV_LOCK), "torch"), encoding="utf-8")
        subprocess.run([sys.executable, *_COMPILE, *extra, "-o", str(runtime), "requirements.in"], check=True, cwd=REPO)
        compiled = runtime.read_text()
        torch, missing = torch_entries(version, index)
        text = _header("requirements.in", missing) + "".join(
            torch if n == "torch" else e for n, e in _entries(compiled)
        )
        (REPO / RUNTIME_LOCK).write_text(text, encoding="utf-8")
        subprocess.run([sys.executable, *_COMPILE, *extra, "-o", str(dev), "requirements-dev.in"], check=True, cwd=REPO)
        pinned = {name for name, _ in _entries(compiled)}
        added = [entry for name, entry in _entries(dev.read_text()) if name not in pinned]
        (REPO / DEV_LOCK).write_text(_header("requirements-dev.in", []) + "".join(added), encoding="utf-8")
    print(f"lock: {len(pinned)} packages in {RUNTIME_LOCK}, {len(added)} more in {DEV_LOCK}")
    for cell in missing:
        print(f"lock: no torch wheel for {cell} (PyTorch's CPU index: {index})", file=sys.stderr)
    return 0


def _read(name: str) -> str:
    path = REPO / name
    return path.read_text(encoding="utf-8") if path.exists() else ""


def _header(source: str, missing: list[str]) -> str:
    lines = [f"Generated from {source} by ./pipeline lock (pip-compile --generate-hashes). Do not edit by hand."]
    if source == "requirements.in":
        lines.append(f"For CPython {', '.join(PYTHONS)} on {', '.join(p.name for p in PLATFORMS)}; torch's entries say")
        lines.append("which build each platform takes, and name its files.")
        if missing:
            lines.append(f"No torch wheel was found for: {', '.join(missing)} (see docs/dependencies.md).")
    return "".join(f"# {line}\n" for line in lines)


def _without(text: str, name: str) -> str:
    return "".join(entry for entry_name, entry in _entries(text) if entry_name != name)


def _entries(text: str) -> list[tuple[str, str]]:
    """(normalized name, its lines: the pin, its hashes and comments) of a compiled lock, header left out."""
    entries: list[tuple[str, str]] = []
    for line in text.splitlines(keepends=True):
        if line[:1].isalnum():
            name = line.split("==", 1)[0].strip().lower().replace("_", "-").replace(".", "-")
            entries.append((name, line))
        elif entries:
            entries[-1] = (entries[-1][0], entries[-1][1] + line)
    return entries

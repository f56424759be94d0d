"""Both locks install, hash for hash, on every (platform, CPython) cell requirements.lock holds torch for: pip's
own resolver with its platform options, against PyPI and pip's configured sources, so a missing wheel fails the
cell's test by name. pip evaluates markers for the machine it runs on, so each cell is given the entries its
own markers select (ops/lock.py's for_cell). With --no-deps it checks files, not the dependency tree: that is
one resolution for every platform (docs/dependencies.md), and the platforms job of reproducibility.yml installs
it on macOS and aarch64 for real."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from packaging.utils import canonicalize_name

from adaline_repro.ops.lock import DEV_LOCK, RUNTIME_LOCK, SDIST_ONLY, covered, for_cell
from tests.conftest import REPO

RUNTIME, DEV = (REPO / RUNTIME_LOCK).read_text(), (REPO / DEV_LOCK).read_text()
CELLS = covered(RUNTIME)


def test_the_lock_covers_macos_arm64_and_linux_aarch64_on_every_python_and_linux_x86_64():
    names = {(platform.name, python) for platform, python in CELLS}
    assert {(p, v) for p in ("macOS arm64", "Linux aarch64") for v in ("3.11", "3.12", "3.13")} <= names
    assert ("Linux x86-64", "3.11") in names


@pytest.mark.parametrize(("platform", "python"), CELLS, ids=[f"{p.name}-{v}".replace(" ", "-") for p, v in CELLS])
def test_both_locks_resolve_with_their_hashes_on(platform, python, tmp_path):
    locks = []
    for name, text in ((RUNTIME_LOCK, RUNTIME), (DEV_LOCK, DEV)):
        (tmp_path / name).write_text(for_cell(text, platform, python))
        locks += ["-r", str(tmp_path / name)]
    report = tmp_path / "report.json"
    resolve = [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed", "--no-deps",
               "--target", str(tmp_path / "target"), "--only-binary=:all:", *(f"--no-binary={n}" for n in SDIST_ONLY),
               "--python-version", python, "--implementation", "cp", *(f"--platform={t}" for t in platform.tags),
               "--require-hashes", "--report", str(report), *locks]  # fmt: skip
    done = subprocess.run(resolve, capture_output=True, text=True)
    if done.returncode and platform.cpu_build:  # the +cpu build not where pip looks: PyTorch's index, as ./pipeline
        done = subprocess.run([*resolve, "--extra-index-url", os.environ["ADALINE_TORCH_INDEX"]], capture_output=True,
                              text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    chosen = {canonicalize_name(item["metadata"]["name"]) for item in json.loads(report.read_text())["install"]}
    pinned = {canonicalize_name(line.split("==", 1)[0]) for line in (RUNTIME + DEV).splitlines() if line[:1].isalnum()}
    assert chosen == pinned  # every pinned package, torch included, has a file for this cell

"""The two locks: every package pinned to one release by its hashes, the runtime lock free of test tools,
torch's build chosen by platform, and the CUDA install (ADALINE_TORCH=cuda) given the runtime lock less exactly
torch's entries."""

from __future__ import annotations

import re
import subprocess

import pytest

from adaline_repro.ops.lock import PLATFORMS
from tests.conftest import REPO

LOCKS = ("requirements.lock", "requirements-dev.lock")


def entries(text: str) -> dict[str, list[str]]:
    """A pip-compile lock -> {name==version[ ; marker]: its hashes}; fails on an entry pip --require-hashes
    refuses."""
    found: dict[str, list[str]] = {}
    logical = re.sub(r"\\\n", " ", text)  # pip joins continuation lines the same way
    for line in logical.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        marker = ""
        if " ; " in line:
            line, rest = line.split(" ; ", 1)
            marker, _, options_text = rest.partition(" --")
            line = f"{line} --{options_text}"
            marker = f" ; {marker.strip()}"
        requirement, *options = line.split()
        assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[A-Za-z0-9_.+\-]+", requirement), line
        hashes = [o.removeprefix("--hash=sha256:") for o in options if o.startswith("--hash=sha256:")]
        assert hashes, line
        assert len(hashes) == len(options), line
        found[requirement + marker] = hashes
    return found


def in_names(path: str) -> set[str]:
    """The packages a .in file asks for, by their normalized names."""
    names = set()
    for line in (REPO / path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            names.add(normalized(line))
    return names


def normalized(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", re.split(r"[=\[<>]", requirement, maxsplit=1)[0]).lower()


@pytest.mark.parametrize("lock", LOCKS)
def test_every_entry_is_one_release_with_its_hashes(lock):
    assert entries((REPO / lock).read_text())


def test_the_runtime_lock_holds_none_of_the_test_tools_and_pins_torch_s_cpu_build_per_platform():
    runtime = entries((REPO / "requirements.lock").read_text())
    names = {normalized(r) for r in runtime}
    assert in_names("requirements.in") <= names
    assert not in_names("requirements-dev.in") & names
    torch = {r.split(" ; ")[1]: r.split(" ; ")[0] for r in runtime if normalized(r) == "torch"}
    assert torch.keys() == {platform.marker for platform in PLATFORMS}
    for platform in PLATFORMS:  # PyTorch's +cpu build on Linux x86-64; PyPI's, a CPU build, elsewhere
        assert torch[platform.marker].endswith("+cpu") == platform.cpu_build


def test_the_dev_lock_adds_to_the_runtime_lock_without_repeating_or_changing_it():
    runtime = {normalized(r) for r in entries((REPO / "requirements.lock").read_text())}
    dev = {normalized(r) for r in entries((REPO / "requirements-dev.lock").read_text())}
    assert in_names("requirements-dev.in") <= dev
    assert not runtime & dev


def without_torch(lock: str) -> str:
    """The pipeline script's own filter, run by bash on the real lock."""
    script = (REPO / "pipeline").read_text()
    function = re.search(r"^without_torch\(\) \{.*?^\}$", script, re.MULTILINE | re.DOTALL)
    assert function, "pipeline has no without_torch()"
    command = f'{function.group(0)}\nwithout_torch "$1"'
    return subprocess.run(
        ["bash", "-c", command, "bash", str(REPO / lock)], capture_output=True, text=True, check=True
    ).stdout


@pytest.mark.parametrize("lock", LOCKS)
def test_the_cuda_install_drops_torch_s_entry_alone(lock):
    full = entries((REPO / lock).read_text())
    assert entries(without_torch(lock)) == {r: h for r, h in full.items() if normalized(r) != "torch"}

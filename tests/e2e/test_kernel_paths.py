"""With the CPU pins, training gives the committed bytes on every MKL code path and ATen kernel width this
machine can be forced into, both vendors' MKL paths included; without them, the bytes change.

One machine plays both vendors: a shim preloaded into the training process answers MKL's vendor questions
as an Intel or an AMD Zen CPU would (tests/e2e/mkl_vendor_shim.c), and MKL_ENABLE_INSTRUCTIONS narrows its
Intel path. Each configuration trains every backend with the train stage's own command line, in a process
of its own (one per configuration: MKL reads its environment once per process).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from adaline_repro.core import cpu_pins
from adaline_repro.ops.fingerprint import cpu
from tests.conftest import PATHS, REPO

FLAGS = set(cpu()["flags"])
AVX512 = "avx512f" in FLAGS
if platform.machine() != "x86_64":
    pytest.skip("MKL's code paths are x86-64's; other architectures use other BLAS libraries", allow_module_level=True)
if "avx2" not in FLAGS:
    pytest.skip("the pins select AVX2 kernels; this CPU has no AVX2", allow_module_level=True)
if shutil.which("gcc") is None:
    pytest.skip("gcc builds the vendor shim (./pipeline system-packages installs it)", allow_module_level=True)


@dataclass(frozen=True)
class Config:
    """One way of running the train stage: pinned or not, which vendor MKL is told, which paths it may take."""

    pinned: bool
    vendor: str | None = None  # "intel" or "zen": the shim preloaded; None: the machine's own answer
    env: dict[str, str] = field(default_factory=dict)
    needs_avx512: bool = False


PINNED = {
    "native": Config(True),
    "mkl-zen": Config(True, "zen"),
    "mkl-intel-sse4_2": Config(True, "intel", {"MKL_ENABLE_INSTRUCTIONS": "SSE4_2"}),
    "mkl-intel-avx2": Config(True, "intel", {"MKL_ENABLE_INSTRUCTIONS": "AVX2"}),
    "mkl-intel-avx512": Config(True, "intel", {"MKL_ENABLE_INSTRUCTIONS": "AVX512"}, needs_avx512=True),
    # An Intel AVX-512 Xeon with ATen at its widest too (the pin says avx2: this shows the width is harmless).
    "mkl-intel-avx512+aten-avx512": Config(
        True, "intel", {"MKL_ENABLE_INSTRUCTIONS": "AVX512", "ATEN_CPU_CAPABILITY": "avx512"}, needs_avx512=True
    ),
}
UNPINNED = {
    "unpinned-mkl-zen": Config(False, "zen"),
    "unpinned-mkl-intel-avx2": Config(False, "intel", {"MKL_ENABLE_INSTRUCTIONS": "AVX2"}),
}


@dataclass(frozen=True)
class Trained:
    files: dict[str, bytes]  # models/<backend>.json, plots/loss/<backend>.csv and steps/<backend>.csv
    kernels: dict  # fingerprint.cpu_kernels() of the training process, after training


def _committed(backends: tuple[str, ...]) -> dict[str, bytes]:
    dirs = PATHS.results(REPO)
    files = (dirs.model, dirs.curve, dirs.step)
    return {str(path(b).relative_to(REPO)): path(b).read_bytes() for b in backends for path in files}


# Runs each backend's train stage command line (a JSON list of argument lists), then reports what the
# libraries ran.
_DRIVER = """
import json, sys
from adaline_repro import cli
from adaline_repro.ops import fingerprint
for args in json.loads(sys.argv[2]):
    assert cli.main(args) == 0, args
open(sys.argv[1], "w").write(json.dumps(fingerprint.cpu_kernels()))
"""


def _train(
    name: str, config: Config, shims: dict[str, Path], train_csv: Path, out: Path, backends: tuple[str, ...]
) -> Trained:
    env = {k: v for k, v in os.environ.items() if k not in cpu_pins.PINS and k != "MKL_ENABLE_INSTRUCTIONS"}
    env.pop(cpu_pins.SWITCH, None)
    env["PYTHONPATH"] = str(REPO / "src")
    if config.pinned and "ATEN_CPU_CAPABILITY" in config.env:  # another value than the pin's: set them by hand
        env.update({**cpu_pins.PINS, cpu_pins.SWITCH: cpu_pins.OFF})
    elif not config.pinned:
        env[cpu_pins.SWITCH] = cpu_pins.OFF
    env.update(config.env)
    if config.vendor:
        env["LD_PRELOAD"] = str(shims[config.vendor])
    root = out / name
    dirs = PATHS.results(root)
    stages = [
        ["stage", "train", "--params", str(REPO / "params.yaml"), "--backend", backend, "--train", str(train_csv),
         "--model", str(dirs.model(backend)), "--curve", str(dirs.curve(backend)), "--steps", str(dirs.step(backend))]
        for backend in backends
    ]  # fmt: skip
    report = root / "kernels.json"
    root.mkdir(parents=True)
    done = subprocess.run(
        [sys.executable, "-c", _DRIVER, str(report), json.dumps(stages)], cwd=REPO, env=env, capture_output=True,
        text=True,
    )  # fmt: skip
    assert done.returncode == 0, f"{name}: {done.stdout}\n{done.stderr}"
    files = {
        str(p.relative_to(root)): p.read_bytes()
        for folder in (dirs.models, dirs.curves, dirs.steps)
        for p in sorted(folder.iterdir())
    }
    return Trained(files, json.loads(report.read_text()))


@pytest.fixture(scope="module")
def shims(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("shims")
    built = {}
    for vendor, as_intel in (("intel", 1), ("zen", 0)):
        built[vendor] = out / f"mkl_{vendor}.so"
        source = Path(__file__).with_name("mkl_vendor_shim.c")
        subprocess.run(
            ["gcc", "-shared", "-fPIC", "-O2", f"-DAS_INTEL={as_intel}", "-o", str(built[vendor]), str(source)],
            check=True,
        )
    return built


@pytest.fixture(scope="module")
def trained(shims, data_dir, params, tmp_path_factory) -> dict[str, Trained]:
    """Every configuration this CPU can run, two at a time."""
    out = tmp_path_factory.mktemp("trained")
    configs = {n: c for n, c in {**PINNED, **UNPINNED}.items() if AVX512 or not c.needs_avx512}
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {
            n: pool.submit(_train, n, c, shims, data_dir / "train.csv", out, params.train.backends)
            for n, c in configs.items()
        }
        return {n: f.result() for n, f in futures.items()}


@pytest.mark.parametrize("name", PINNED)
def test_pinned_training_reproduces_the_committed_bytes(name, trained, params):
    """Models and loss curves of every backend equal the committed files byte for byte, on this path."""
    if PINNED[name].needs_avx512 and not AVX512:
        pytest.skip("this CPU has no AVX-512, so MKL's and ATen's AVX-512 kernels cannot run here")
    run = trained[name]
    assert run.kernels["mkl"]["cnr"] == "COMPATIBLE"
    assert run.kernels["torch_threads"] == 1
    assert run.kernels["aten_capability"] == PINNED[name].env.get("ATEN_CPU_CAPABILITY", "avx2").upper()
    assert run.files == _committed(params.train.backends)


def test_the_shim_really_moves_mkl_onto_the_path_asked_for(trained):
    """Unpinned, MKL reports the Intel AVX2 path under the Intel shim: the forced paths are real ones."""
    kernels = trained["unpinned-mkl-intel-avx2"].kernels
    assert kernels["mkl"]["cnr"] == "OFF"
    assert "AVX2" in kernels["mkl"]["code_path"]
    assert "AVX2" not in trained["unpinned-mkl-zen"].kernels["mkl"]["code_path"]


def test_without_the_pins_the_two_vendors_paths_give_other_bytes(trained):
    """The pins matter: unpinned, MKL's Intel AVX2 kernels and its Zen path round differently here."""
    intel, zen = trained["unpinned-mkl-intel-avx2"].files, trained["unpinned-mkl-zen"].files
    assert intel.keys() == zen.keys()
    assert intel != zen

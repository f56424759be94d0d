"""The environment a result came from: enough to tell a torch upgrade from a different CPU or GPU."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from adaline_repro.core import cpu_pins

# CPU features that change which kernels torch and numpy pick, and so the float rounding.
_CPU_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "asimd", "sve")


def cpu() -> dict[str, object]:
    """The CPU's model, core count and the features among _CPU_FLAGS it has."""
    model, flags = platform.processor() or platform.machine(), set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                model = value.strip()
            elif key.strip() in ("flags", "Features") and not flags:
                flags = set(value.split())
    return {"model": model, "count": os.cpu_count(), "flags": sorted(f for f in _CPU_FLAGS if f in flags)}


def _nvidia_driver() -> str | None:
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip().splitlines()[0] if done.stdout.strip() else None


# Fingerprint keys (dotted prefixes) whose difference can change result bytes with the pins in place: the
# pinned kernels are the same code only for the same libraries on the same architecture, with the same pins
# honoured. The CPU's model, flags and MKL's reported code path under CNR are not among them: the pins
# make those not matter, so a byte difference between two such machines is a finding. Nor is Python's
# patch version (hosted CI runners vary in it): the interpreter does none of the arithmetic.
EXPLAINS_BYTES = (
    "architecture",
    "torch",
    "numpy",
    "cpu_pins",
    "cpu_kernels.aten_capability",
    "cpu_kernels.torch_threads",
    "cpu_kernels.mkl.version",
    "cpu_kernels.mkl.cnr",
    "cpu_kernels.mkl.threads",
    "cpu_kernels.mkl.dynamic",
    "cpu_kernels.onednn.calls",
)


@dataclass(frozen=True)
class Difference:
    """One fingerprint leaf that differs: its dotted key and both values."""

    key: str
    reference: object
    now: object

    def __str__(self) -> str:
        return f"{self.key}: {self.reference} -> {self.now}"

    @property
    def explains_bytes(self) -> bool:
        return any(self.key == k or self.key.startswith(k + ".") for k in EXPLAINS_BYTES)


def fingerprint() -> dict[str, object]:
    """Versions, hardware, the configured CPU pins and what the libraries report they run."""
    import numpy as np
    import torch

    from adaline_repro.stages.train import determinism

    cuda = torch.cuda.is_available()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "architecture": platform.machine(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "cpu": cpu(),
        "cpu_pins": cpu_pins.configured(),
        "cpu_kernels": cpu_kernels(),
        "cuda": {
            "available": cuda,
            "torch_cuda": torch.version.cuda,
            "device": torch.cuda.get_device_name(0) if cuda else None,
            "driver": _nvidia_driver() if cuda else None,
            "cudnn": torch.backends.cudnn.version() if cuda else None,
        },
        # Read from torch after the train stage's own set-up for the device it would use here (this process
        # trains nothing, so the global settings it takes on do not matter).
        "deterministic": {"device": "cuda" if cuda else "cpu", **determinism("cuda" if cuda else "cpu")},
    }


@functools.cache
def cpu_kernels() -> dict[str, object]:
    """What torch's CPU libraries say they run, observed on the ops the backends use (float32 products of an
    (n, f) batch with (f, 1) weights, forward and backward): ATen's kernel width and threads, MKL's version,
    code path, CNR branch and threads from its verbose log, and how many calls reached oneDNN.

    Once per process: MKL prints its header line on the first verbose call only.
    """
    import torch

    log = _stdout_of(_probe)
    mkl = _mkl_report(log) if torch.backends.mkl.is_available() else None
    return {
        "aten_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "mkl": mkl,
        "onednn": {
            "available": torch.backends.mkldnn.is_available(),
            "calls": sum(1 for line in log.splitlines() if line.startswith("onednn_verbose") and ",exec," in line),
        },
    }


def _probe() -> None:
    import torch

    def ops() -> None:
        x = torch.linspace(-1.0, 1.0, 20).view(10, 2)  # (n, f)
        w = torch.full((2, 1), 0.5, requires_grad=True)  # (f, 1)
        b = torch.zeros(1, requires_grad=True)
        torch.nn.functional.linear(x, w.t(), b).sum().backward()  # addmm forward, mm backward
        torch.mm(x.t(), torch.mm(x, w.detach()))
        _ = x @ w.detach()[:, 0]  # matrix times vector

    mkl = torch.backends.mkl
    with (
        torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON),
        mkl.verbose(mkl.VERBOSE_ON) if mkl.is_available() else contextlib.nullcontext(),
    ):
        ops()


_MKL_HEADER = re.compile(r"^MKL_VERBOSE (?P<version>.+?) for (?:Intel\(R\) 64 architecture )?(?P<path>.+?), Lnx")
_MKL_CALL = re.compile(r"^MKL_VERBOSE (?P<fn>\w+)\(.*CNR:(?P<cnr>\S+) Dyn:(?P<dyn>\d).*NThr:(?P<threads>\d+)")


def _mkl_report(log: str) -> dict[str, object]:
    """MKL's verbose lines -> its version, code path ("processors" it targets), CNR branch, threads, calls."""
    version = path = None
    calls: set[str] = set()
    cnr: set[str] = set()
    dynamic: set[bool] = set()
    threads: set[int] = set()
    for line in log.splitlines():
        if header := _MKL_HEADER.match(line):
            version, path = header["version"], header["path"]
        elif call := _MKL_CALL.match(line):
            calls.add(call["fn"])
            cnr.add(call["cnr"])
            dynamic.add(call["dyn"] == "1")
            threads.add(int(call["threads"]))

    def one(values: set) -> object:
        return next(iter(values)) if len(values) == 1 else sorted(values)

    return {
        "version": version,
        "code_path": path,
        "cnr": one(cnr),
        "dynamic": one(dynamic),
        "threads": one(threads),
        "calls": sorted(calls),
    }


def _stdout_of(func: Callable[[], None]) -> str:
    """What `func` writes to file descriptor 1, C libraries included (MKL and oneDNN print with printf)."""
    libc = ctypes.CDLL(None)
    sys.stdout.flush()
    saved = os.dup(1)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        try:
            func()
        finally:
            libc.fflush(None)
            os.dup2(saved, 1)
            os.close(saved)
        sink.seek(0)
        return sink.read().decode(errors="replace")


def differences(a: dict, b: dict, prefix: str = "") -> list[Difference]:
    """Each leaf that differs between two fingerprints (reference `a`, now `b`)."""
    out = []
    for key in sorted(set(a) | set(b)):
        left, right = a.get(key), b.get(key)
        if isinstance(left, dict) and isinstance(right, dict):
            out += differences(left, right, f"{prefix}{key}.")
        elif left != right:
            out.append(Difference(f"{prefix}{key}", left, right))
    return out


if __name__ == "__main__":
    print(json.dumps(fingerprint()))

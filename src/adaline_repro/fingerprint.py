"""The environment a result came from: enough to tell a torch upgrade from a different CPU or GPU."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path

# CPU features that change which kernels torch and numpy pick, and so the float rounding.
_CPU_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "asimd", "sve")


def _cpu() -> dict[str, object]:
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


def fingerprint() -> dict[str, object]:
    """Versions, hardware and the numeric settings the pipeline uses."""
    import numpy as np
    import torch

    cuda = torch.cuda.is_available()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "cpu": _cpu(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "cuda": {
            "available": cuda,
            "torch_cuda": torch.version.cuda,
            "device": torch.cuda.get_device_name(0) if cuda else None,
            "driver": _nvidia_driver() if cuda else None,
            "cudnn": torch.backends.cudnn.version() if cuda else None,
        },
        "deterministic": {
            # What train.resolve_device sets for every run; recorded so a report shows the settings compared.
            "use_deterministic_algorithms": True,
            "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG", ":4096:8 (set on cuda)"),
            "tf32": False,
            "shuffle_generator": "torch.Generator on the CPU",
        },
    }


def differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    """`key: a -> b` for each leaf that differs between two fingerprints."""
    out = []
    for key in sorted(set(a) | set(b)):
        left, right = a.get(key), b.get(key)
        if isinstance(left, dict) and isinstance(right, dict):
            out += differences(left, right, f"{prefix}{key}.")
        elif left != right:
            out.append(f"{prefix}{key}: {left} -> {right}")
    return out

"""The CPU kernel configuration every process of this project computes under, set before torch is imported.

Unpinned, the same float32 training differs by 1 to 4 ULP between an Intel and an AMD CPU: MKL, which torch
calls for every matrix product, picks its kernels by CPU vendor and vector width. With these variables set
the bytes are the same on any x86-64 CPU with AVX2 (docs/bit-for-bit.md has the measurements). On other
architectures (macOS arm64, Linux aarch64) the thread pins apply; the results there are within the compare
tolerances of the committed ones, not the same bytes.

The package's `__init__` applies them, so a stage process, a test process or the check's scratch run gets
them before anything can import torch. Values found in the environment are replaced, with a warning;
`ADALINE_CPU_PINS=off` leaves the environment as it is (for measuring what the pins change), and the
environment fingerprint records that, so `./pipeline check` reports it.

Standard library only: this runs on every import of the package.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import MutableMapping

SWITCH = "ADALINE_CPU_PINS"
OFF = "off"

PINS: dict[str, str] = {
    # MKL's Conditional Numerical Reproducibility, COMPATIBLE branch: the one branch Intel documents to give
    # the same results on Intel and non-Intel processors. Any other branch (AVX2, AVX512) falls back to AUTO
    # on AMD, where MKL also ignores MKL_ENABLE_INSTRUCTIONS.
    "MKL_CBWR": "COMPATIBLE",
    # A fixed thread count: CNR holds only for a fixed number of threads, and ATen splits large reductions
    # over its threads. One thread, because the matrices are tiny and a machine's core count must not matter.
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    # Without it MKL may use fewer threads than asked for, decided at run time.
    "MKL_DYNAMIC": "FALSE",
}
if os.uname().machine in ("x86_64", "amd64"):  # the vector widths below name x86 ISAs: elsewhere torch warns
    PINS |= {
        # ATen's own vectorized kernels (elementwise ops, reductions such as the MSE's mean) at one width on every
        # CPU. avx2 and avx512 give the same bytes here, 'default' (scalar) does not; avx2 is what both vendors'
        # machines have.
        "ATEN_CPU_CAPABILITY": "avx2",
        # oneDNN does not run these ops today; capped at AVX2 so that an op that starts using it cannot pick
        # AVX-512 kernels on some machines only.
        "ONEDNN_MAX_CPU_ISA": "AVX2",
    }

log = logging.getLogger(__name__)


def enabled(environ: MutableMapping[str, str] = os.environ) -> bool:
    """Whether the pins apply (they do unless ADALINE_CPU_PINS=off)."""
    return environ.get(SWITCH, "").strip().lower() != OFF


def apply(environ: MutableMapping[str, str] = os.environ) -> list[str]:
    """Set every pin in `environ`; returns `NAME=yours -> pinned` for each value it replaced."""
    if not enabled(environ):
        return []
    replaced = [f"{k}={environ[k]} -> {v}" for k, v in PINS.items() if k in environ and environ[k] != v]
    environ.update(PINS)
    return replaced


def configured(environ: MutableMapping[str, str] = os.environ) -> dict[str, object]:
    """What the environment says, for the fingerprint: the switch and each pinned variable's value."""
    return {"enabled": enabled(environ), "environment": {k: environ.get(k) for k in sorted(PINS)}}


def apply_at_import() -> None:
    """What the package does on import: apply, and say what was replaced or cannot hold."""
    if "torch" in sys.modules and enabled() and any(os.environ.get(k) != v for k, v in PINS.items()):
        log.warning("torch was imported before adaline_repro: its CPU kernel pins may not hold in this process")
    for change in apply():
        log.warning("CPU pin: %s (set %s=off to keep your value)", change, SWITCH)

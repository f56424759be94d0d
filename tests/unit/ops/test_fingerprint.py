"""The environment fingerprint records the configured pins and what the libraries report they run; only
differences that can change bytes despite the pins count as explanations."""

from __future__ import annotations

import pytest
import torch

from adaline_repro.ops.fingerprint import Difference, _mkl_report, cpu_kernels, differences, fingerprint

# MKL's verbose log of one product under the Intel shim with MKL_CBWR=COMPATIBLE (see test_kernel_paths.py).
_LOG = """\
MKL_VERBOSE oneMKL 2024.0 Update 2 Product build 20240605 for Intel(R) 64 architecture Intel(R) Streaming SIMD \
Extensions 2 (Intel(R) SSE2) enabled processors, Lnx 2.60GHz lp64 gnu_thread
MKL_VERBOSE SGEMM(T,T,10,1,2,0x7ff,0x556,2,0x556,1,0x7ff,0x556,10) 62.80us CNR:COMPATIBLE Dyn:0 FastMM:1 TID:0  NThr:1
MKL_VERBOSE SGEMV(t,2,10,0x7ff,0x556,2,0x556,1,0x7ff,0x556,1) 6.40us CNR:COMPATIBLE Dyn:0 FastMM:1 TID:0  NThr:1
"""


def test_mkl_verbose_log_gives_version_code_path_branch_and_threads():
    assert _mkl_report(_LOG) == {
        "version": "oneMKL 2024.0 Update 2 Product build 20240605",
        "code_path": "Intel(R) Streaming SIMD Extensions 2 (Intel(R) SSE2) enabled processors",
        "cnr": "COMPATIBLE",
        "dynamic": False,
        "threads": 1,
        "calls": ["SGEMM", "SGEMV"],
    }


@pytest.mark.skipif(not torch.backends.mkl.is_available(), reason="this torch build has no MKL")
def test_this_pinned_process_reports_the_pinned_kernels():
    """The test process imported the package before torch, so its libraries run what the pins ask for."""
    kernels = cpu_kernels()
    assert kernels["aten_capability"] == "AVX2"
    assert kernels["torch_threads"] == 1
    assert kernels["mkl"]["cnr"] == "COMPATIBLE"
    assert kernels["mkl"]["threads"] == 1
    assert kernels["mkl"]["dynamic"] is False
    assert {"SGEMM", "SGEMV"} <= set(kernels["mkl"]["calls"])
    assert kernels["onednn"]["calls"] == 0  # these ops never reach oneDNN: its ISA cap is insurance only


def test_a_cpu_model_or_mkl_code_path_is_no_explanation_but_a_library_or_pin_is():
    """Under the pins the CPU itself must not matter; another torch, architecture or pin may."""
    now = fingerprint()
    other = {
        **now,
        "cpu": {**now["cpu"], "model": "Intel(R) Xeon(R) Platinum"},
        "cpu_kernels": {**now["cpu_kernels"], "mkl": {**now["cpu_kernels"]["mkl"], "code_path": "SSE2"}},
    }
    assert [d.explains_bytes for d in differences(other, now)] == [False, False]
    moved = {**other, "torch": "2.14.0", "cpu_pins": {**now["cpu_pins"], "enabled": False}}
    explained = sorted(d.key for d in differences(moved, now) if d.explains_bytes)
    assert explained == ["cpu_pins.enabled", "torch"]
    assert str(Difference("torch", "2.14.0", "2.13.0")) == "torch: 2.14.0 -> 2.13.0"

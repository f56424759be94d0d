"""ADALINE trained three ways (manual, autograd, module), tracked with MLflow, checked for agreement by DVC."""

from adaline_repro.core import cpu_pins as _cpu_pins

# Before any module of the package can import torch: the same kernels, so the same bytes, on any x86-64 CPU.
_cpu_pins.apply_at_import()

__all__ = ["__version__"]
__version__ = "0.1.0"

"""Backends by name: the same names as in params.yaml, output files and MLflow runs."""

from __future__ import annotations

from adaline_repro.backends.autograd import AutogradBackend
from adaline_repro.backends.base import Backend
from adaline_repro.backends.manual import ManualBackend
from adaline_repro.backends.module import ModuleBackend

REGISTRY: dict[str, type[Backend]] = {cls.name: cls for cls in (ManualBackend, AutogradBackend, ModuleBackend)}

__all__ = ["REGISTRY", "AutogradBackend", "Backend", "ManualBackend", "ModuleBackend"]

"""Backends by name: the same names as in params.yaml, output files and MLflow runs.

Each backend lives in `backends/<name>.py` and is imported only when asked for, so training one
backend does not import (or depend on) the others: `module` pulls in torch.optim, which costs seconds.
"""

from __future__ import annotations

import importlib

from adaline_repro.backends.base import Backend
from adaline_repro.params import BACKENDS


def get(name: str) -> type[Backend]:
    """The backend class registered under `name` (one of params.BACKENDS)."""
    if name not in BACKENDS:
        raise KeyError(f"unknown backend {name!r}; known: {', '.join(BACKENDS)}")
    module = importlib.import_module(f"adaline_repro.backends.{name}")
    (cls,) = (v for v in vars(module).values() if isinstance(v, type) and issubclass(v, Backend) and v is not Backend)
    return cls


__all__ = ["BACKENDS", "Backend", "get"]

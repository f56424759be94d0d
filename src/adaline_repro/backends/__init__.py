"""The backend registry: every backend's name, the same in params.yaml, file names, stages and MLflow runs.

Each backend lives in `backends/<name>.py` and is imported only when asked for, so training one backend
does not import (or depend on) the others: `module` pulls in torch.optim, which costs seconds. Importing
this package imports no torch (params.py validates names against it).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from adaline_repro.errors import InputError

if TYPE_CHECKING:
    from adaline_repro.backends.base import Backend

# To add a backend: write backends/<name>.py (a Backend subclass) and add its name here.
BACKENDS = ("manual", "autograd", "module")


class UnknownBackend(InputError):
    """A name that is not in the registry."""


def get(name: str) -> type[Backend]:
    """The backend class registered under `name`."""
    from adaline_repro.backends.base import Backend

    if name not in BACKENDS:
        raise UnknownBackend(f"unknown backend {name!r}; known: {', '.join(BACKENDS)}")
    module = importlib.import_module(f"adaline_repro.backends.{name}")
    (cls,) = (v for v in vars(module).values() if isinstance(v, type) and issubclass(v, Backend) and v is not Backend)
    return cls


__all__ = ["BACKENDS", "UnknownBackend", "get"]

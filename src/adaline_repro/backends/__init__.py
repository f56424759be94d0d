"""The backend registry: every backend's name, the same in params.yaml, file names, stages and MLflow runs.

Each backend lives in `backends/<name>.py` (a `base.Backend`) and is imported only when asked for, so
training one backend does not import (or depend on) the others: `module` pulls in torch.optim, which costs
seconds. The backends import nothing else of the project, and importing this package imports no torch:
params.py validates `train.backends` against these names.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from adaline_repro.backends.base import Backend

# To add a backend: write backends/<name>.py (a Backend subclass) and add its name here.
BACKENDS = ("manual", "autograd", "module")


def get(name: str) -> type[Backend]:
    """The backend class registered under `name` (params.py and the train command refuse other names)."""
    from adaline_repro.backends.base import Backend

    if name not in BACKENDS:
        raise KeyError(f"unknown backend {name!r}; known: {', '.join(BACKENDS)}")
    module = importlib.import_module(f"adaline_repro.backends.{name}")
    (cls,) = (v for v in vars(module).values() if isinstance(v, type) and issubclass(v, Backend) and v is not Backend)
    return cls


__all__ = ["BACKENDS", "get"]

"""A sweep's trials: the grid `dvc exp run --queue -S ...` would queue, each checked before any work.

The grammar, its expansion and what each value does to params.yaml are DVC's own (dvc_support/overrides.py),
so a sweep and DVC's queue always mean the same trials by the same `-S` values. The committed default sweep
lives in sweep.yaml beside params.yaml: a result is tied to the commit that defines it.
"""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass
from pathlib import Path

from adaline_repro.core.errors import InputError
from adaline_repro.core.files import safe_yaml
from adaline_repro.core.params import Params
from adaline_repro.dvc_support.overrides import Overrides, SetParamError, grid

DEFAULT_SWEEP = "sweep.yaml"
# What a sweep may vary: the stages' own keys. fetch (the raw file), compare (the verdict's tolerances) and
# tracking (where it is logged) would make trials of other experiments, not points of one grid.
SWEEPABLE = ("prepare.", "train.", "evaluate.")


class GridError(InputError):
    """A grid that cannot be run: bad syntax, an unknown or unsweepable key, an empty range, a refused value."""


@dataclass(frozen=True)
class Trial:
    """One point of the grid: its `-S` values, in DVC's order."""

    overrides: tuple[str, ...]

    @property
    def id(self) -> str:
        """Stable over runs and machines: the sorted `-S` values' digest (the journal and MLflow key)."""
        return hashlib.sha256("\n".join(sorted(self.overrides)).encode()).hexdigest()[:12]

    @property
    def command(self) -> str:
        """The DVC command that reproduces this trial in a checkout of the same commit."""
        return "./pipeline dvc exp run " + " ".join(f"-S {shlex.quote(o)}" for o in self.overrides)


def default_overrides(root: Path) -> list[str]:
    """The committed default sweep: sweep.yaml's `overrides`, one `-S` value each."""
    path = root / DEFAULT_SWEEP
    try:
        document = safe_yaml(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise GridError(f"{path}: cannot read ({exc.strerror})") from None
    overrides = document.get("overrides") if isinstance(document, dict) else None
    if not (isinstance(overrides, list) and overrides and all(isinstance(o, str) for o in overrides)):
        raise GridError(f"{path}: overrides: must be a non-empty list of -S values (key=value)")
    return overrides


def trials(applied: Overrides, overrides: list[str]) -> list[Trial]:
    """Every trial of the grid; raises GridError (one line) before any work when one cannot run.

    Each distinct `-S` value is applied to params.yaml alone and validated. That checks every trial: the
    values set different keys, and no rule of params.py ties two sweepable keys together (a combination
    that fails while training, a minibatch larger than the split, is that trial's error row)."""
    for override in overrides:
        key = override.lstrip("+~").split("=", 1)[0].strip()
        if not key.startswith(SWEEPABLE):
            raise GridError(f"-S {override}: only prepare.*, train.* and evaluate.* keys can be swept")
    try:
        points = grid(overrides)
    except SetParamError as exc:
        raise GridError(str(exc)) from None
    if not points:
        raise GridError(f"-S {' '.join(overrides)}: the grid is empty (an empty range or list?)")
    for value in sorted({o for point in points for o in point}):
        trial_params(applied, [value])
    out = [Trial(tuple(point)) for point in points]
    if len({t.id for t in out}) != len(out):  # a value listed twice: DVC would queue one experiment twice
        raise GridError(f"-S {' '.join(overrides)}: the grid holds a trial twice (a value listed twice?)")
    return out


def trial_params(applied: Overrides, overrides: list[str] | tuple[str, ...]) -> Params:
    """params.yaml with `overrides` set, as `dvc exp run -S` writes it, validated."""
    try:
        return applied.validated(overrides)
    except SetParamError as exc:
        raise GridError(str(exc)) from None

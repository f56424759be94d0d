"""The `-S` values of `dvc exp run` and `./pipeline sweep`, read, expanded and applied by DVC's own code.

- `exp_run_set_params`: a `dvc exp run` line's values by params file, through DVC's argument parser;
- `grid`: every combination `dvc exp run --queue -S ...` would queue (hydra's sweep grammar, called as DVC
  calls it), so a sweep and DVC's queue mean the same trials by the same values;
- `Overrides`: params.yaml as `dvc exp run -S` leaves it, read back as the stages read it. Each distinct
  value is applied once, by DVC's own `apply_overrides`, to a scratch copy of params.yaml; a point of a grid
  combines the keys its values changed (the values of a point set different keys; when two overlap, the
  point is applied through DVC whole);
- `check`: every combination of an `exp run` line validated by the pipeline's params rules before DVC
  starts. A value they refuse is one `error:` line with exit 2 and DVC never starts: params.yaml and every
  output stay as they were (DVC would write the value into params.yaml, delete the stage's outputs and only
  then meet the stage's refusal).
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

from adaline_repro.core.errors import InputError
from adaline_repro.core.files import safe_yaml
from adaline_repro.core.params import Params, ParamsError, parse_params

PARAMS_FILE = "params.yaml"
_DELETED = object()
Key = tuple[str, ...]


class SetParamError(InputError):
    """An `-S` value params.yaml's rules (or DVC's own syntax) refuse."""


def exp_run_set_params(dvc_args: list[str]) -> dict[str, list[str]] | None:
    """The `-S` values of a `dvc exp run` command line (`--queue` and `--temp` included) by params file, as
    DVC's own argument parser and its `file:key=value` grouping read them; None when the line is not an
    `exp run` DVC would accept (DVC itself then says why)."""
    from dvc.cli import DvcParserError, parse_args
    from dvc.commands.experiments.run import CmdExperimentsRun
    from dvc.utils.cli_parse import to_path_overrides

    quiet = io.StringIO()
    logging.disable(logging.CRITICAL)  # DVC logs a bad line's error; it says it again when it runs
    try:
        with contextlib.redirect_stderr(quiet), contextlib.redirect_stdout(quiet):
            args = parse_args(list(dvc_args))
    except (DvcParserError, SystemExit):
        return None
    finally:
        logging.disable(logging.NOTSET)
    if getattr(args, "func", None) is not CmdExperimentsRun:
        return None
    return to_path_overrides(args.set_param or [])


def grid(overrides: Sequence[str]) -> list[list[str]]:
    """Each combination `dvc exp run --queue -S ...` would queue, as its own `-S` values in DVC's order."""
    from dvc.exceptions import InvalidArgumentError
    from dvc.utils.hydra import get_hydra_sweeps
    from hydra.errors import HydraException

    try:
        sweeps = get_hydra_sweeps({PARAMS_FILE: list(overrides)})
    except (InvalidArgumentError, HydraException) as exc:
        raise SetParamError(f"-S {' '.join(overrides)}: {_hydra_line(exc)}") from None
    return [sweep[PARAMS_FILE] for sweep in sweeps]


class Overrides:
    """params.yaml (its text) and what each `-S` value does to it, as DVC writes it."""

    def __init__(self, params_text: str) -> None:
        self.text = params_text
        self.base = safe_yaml(params_text)
        self._changes: dict[str, dict[Key, object]] = {}  # value -> key -> new value (or _DELETED)

    def params(self, point: Sequence[str]) -> dict:
        """params.yaml's mapping with the point's values set, as `dvc exp run -S` leaves the file."""
        changes = [self._change(value) for value in point]
        keys = [key for change in changes for key in change]
        if any(a != b and a[: len(b)] == b for a in keys for b in keys) or len(set(keys)) < len(keys):
            return self._applied(point)  # values that touch the same keys: DVC applies them together
        mapping = copy.deepcopy(self.base)
        for change in changes:
            for key, value in change.items():
                _set(mapping, key, value)
        return mapping

    def validated(self, point: Sequence[str]) -> Params:
        """The point's params, held to params.yaml's rules."""
        try:
            return parse_params(self.params(point), PARAMS_FILE)
        except ParamsError as exc:
            raise SetParamError(f"-S {' '.join(point)}: {exc}") from None

    def _change(self, value: str) -> dict[Key, object]:
        if value not in self._changes:
            self._changes[value] = dict(_differences(self.base, self._applied([value])))
        return self._changes[value]

    def _applied(self, values: Sequence[str]) -> dict:
        """params.yaml after DVC's apply_overrides(values), in a scratch copy, read as the stages read it."""
        from dvc.exceptions import InvalidArgumentError
        from dvc.utils.hydra import apply_overrides

        with tempfile.TemporaryDirectory(prefix="adaline-overrides-") as scratch:
            path = Path(scratch) / PARAMS_FILE
            path.write_text(self.text, encoding="utf-8")
            try:
                apply_overrides(path, list(values))
            except InvalidArgumentError as exc:  # DVC's wrapper says "Invalid `--set-param` value"; hydra says why
                raise SetParamError(f"-S {' '.join(values)}: {_hydra_line(exc.__cause__ or exc)}") from None
            return safe_yaml(path.read_text(encoding="utf-8"))


def check(dvc_args: list[str], root: Path) -> int:
    """Validate every combination an `exp run` line's params.yaml `-S` values make; the number checked
    (0 for any other dvc command). Values for other files are DVC's to check."""
    overrides = (exp_run_set_params(dvc_args) or {}).get(PARAMS_FILE)
    if not overrides:
        return 0
    points = grid(overrides)
    applied = Overrides((root / PARAMS_FILE).read_text(encoding="utf-8"))
    for point in points:
        try:
            applied.validated(point)
        except SetParamError as exc:
            raise SetParamError(f"{exc}; nothing was run or changed") from None
    return len(points)


def _differences(before: object, after: object, key: Key = ()) -> list[tuple[Key, object]]:
    """(key, new value or _DELETED) of every leaf that differs; a list is a leaf."""
    if isinstance(before, dict) and isinstance(after, dict):
        out = []
        for name in [*before, *(k for k in after if k not in before)]:
            if name not in after:
                out.append(((*key, name), _DELETED))
            elif name not in before:
                out.append(((*key, name), after[name]))
            else:
                out += _differences(before[name], after[name], (*key, name))
        return out
    return [] if before == after and type(before) is type(after) else [(key, after)]


def _set(mapping: dict, key: Key, value: object) -> None:
    node = mapping
    for part in key[:-1]:
        node = node.setdefault(part, {})
    if value is _DELETED:
        node.pop(key[-1], None)
    else:
        node[key[-1]] = copy.deepcopy(value)


def _hydra_line(exc: BaseException) -> str:
    """Hydra's message, first line, with the cause DVC's own wrapper hides."""
    cause = exc.__cause__ or exc.__context__
    text = str(exc).strip() or str(cause or type(exc).__name__)
    if cause and str(cause).strip() and str(cause).strip() not in text:
        text = f"{text}: {cause}"
    return text.splitlines()[0]

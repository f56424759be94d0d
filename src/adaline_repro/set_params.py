"""`-S` values checked before DVC touches anything: `./pipeline dvc exp run -S ...` (and `--queue`,
`--temp`) applies each combination to params.yaml in memory, as DVC would write it, and validates it with
the pipeline's own params rules. A value they refuse is one `error:` line with exit 2, and DVC never
starts: params.yaml and every output stay as they were (DVC would write the value into params.yaml, delete
the stage's outputs and only then meet the stage's refusal)."""

from __future__ import annotations

from pathlib import Path

from adaline_repro import dvc_internals
from adaline_repro.errors import InputError
from adaline_repro.files import safe_yaml
from adaline_repro.params import Params, ParamsError, parse_params

PARAMS_FILE = "params.yaml"


class SetParamError(InputError):
    """An `-S` value params.yaml's rules (or DVC's own syntax) refuse."""


def validated(raw: dict, overrides: list[str] | tuple[str, ...]) -> Params:
    """params.yaml's mapping with `overrides` set, as `dvc exp run -S` writes it, validated."""
    try:
        return parse_params(dvc_internals.apply_overrides(raw, list(overrides)), PARAMS_FILE)
    except (dvc_internals.OverrideError, ParamsError) as exc:
        raise SetParamError(f"-S {' '.join(overrides)}: {exc}") from None


def check(dvc_args: list[str], root: Path) -> int:
    """Validate every combination an `exp run` line's params.yaml `-S` values make; the number checked
    (0 for any other dvc command). Values for other files are DVC's to check."""
    by_file = dvc_internals.exp_run_set_params(dvc_args)
    overrides = (by_file or {}).get(PARAMS_FILE)
    if not overrides:
        return 0
    try:
        points = dvc_internals.grid(overrides)
    except dvc_internals.OverrideError as exc:
        raise SetParamError(f"-S {' '.join(overrides)}: {exc}") from None
    raw = safe_yaml((root / PARAMS_FILE).read_text(encoding="utf-8"))
    for point in points:
        try:
            validated(raw, point)
        except SetParamError as exc:
            raise SetParamError(f"{exc}; nothing was run or changed") from None
    return len(points)

"""params.yaml -> frozen, validated objects; the only module that reads params.yaml.

msgspec does the validating: it imports in milliseconds, where pydantic costs a noticeable fraction of a
second in each stage process (DVC starts one per stage; docs/performance.md has the figures).
"""

from __future__ import annotations

import contextlib
import difflib
import math
import re
import typing
from pathlib import Path
from typing import Annotated, Literal

import msgspec
import yaml
from msgspec import Meta

from adaline_repro.core.errors import InputError
from adaline_repro.core.files import safe_yaml

FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
SPECIES = ("setosa", "versicolor", "virginica")

Feature = Literal["sepal_length", "sepal_width", "petal_length", "petal_width"]
Species = Literal["setosa", "versicolor", "virginica"]
Sha256 = Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")]
Seed = Annotated[int, Meta(ge=0)]  # and below 2**64, what torch.manual_seed accepts (checked below)


S = typing.TypeVar("S", bound="_Section")


class ParamsError(InputError):
    """params.yaml is missing, unreadable or invalid; the message is one line naming the key."""


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Checks that span a field raise ValueError("<key>: <problem>") from __post_init__."""


class FetchParams(_Section):
    """Where the raw Iris table comes from; sha256 pins its content whatever the source."""

    source: Literal["sklearn", "path", "url"]
    sha256: Sha256
    location: str = ""

    def __post_init__(self) -> None:
        if self.source == "sklearn" and self.location:
            raise ValueError("location: must be empty when source is 'sklearn'")
        if self.source == "path" and not self.location:
            raise ValueError("location: must name a file when source is 'path'")
        if self.source == "url" and not self.location.startswith("https://"):
            raise ValueError("location: must be an https:// URL when source is 'url'")


def _seed_fits(seed: int) -> None:
    if seed >= 2**64:
        raise ValueError(f"seed: must be less than 2**64, what torch.manual_seed accepts (got {seed})")


def _distinct(key: str, value: tuple[str, str]) -> None:
    if value[0] == value[1]:
        raise ValueError(f"{key}: the two entries must differ, got {value[0]!r} twice")


class PrepareParams(_Section):
    """Which two classes and two features to keep, and how to split them."""

    classes: tuple[Species, Species]
    features: tuple[Feature, Feature]
    test_fraction: Annotated[float, Meta(gt=0, lt=1)]
    seed: Seed

    def __post_init__(self) -> None:
        _distinct("classes", self.classes)
        _distinct("features", self.features)
        _seed_fits(self.seed)


class TrainParams(_Section):
    """Seeded minibatch SGD shared by every backend."""

    backends: Annotated[tuple[str, ...], Meta(min_length=1)]  # names from the registry (checked below)
    epochs: Annotated[int, Meta(gt=0)]
    lr: Annotated[float, Meta(gt=0)]
    batch_size: Annotated[int, Meta(gt=0)]
    seed: Seed
    dtype: Literal["float32", "float64"]
    device: Literal["cpu", "cuda", "auto"]

    def __post_init__(self) -> None:
        if not math.isfinite(self.lr):
            raise ValueError(f"lr: must be finite (got {self.lr!r})")
        # The registry (names only, no torch) is imported here, not at the top: fetch and prepare read only
        # their own section (load_section), so neither their processes nor their dvc.yaml deps include it.
        from adaline_repro.backends import BACKENDS

        for i, name in enumerate(self.backends):
            if name not in BACKENDS:
                known = ", ".join(map(repr, BACKENDS))
                raise ValueError(f"backends[{i}]: must be one of {known} (got {name!r})")
        if len(set(self.backends)) != len(self.backends):
            raise ValueError(f"backends: each backend may appear once, got {list(self.backends)}")
        _seed_fits(self.seed)


class EvaluateParams(_Section):
    threshold: float


class CompareParams(_Section):
    """Float quantities pass when |a - b| <= atol + rtol * max(|a|, |b|)."""

    atol: Annotated[float, Meta(ge=0)]
    rtol: Annotated[float, Meta(ge=0)]


class TrackingParams(_Section):
    experiment: Annotated[str, Meta(min_length=1)]


class Params(_Section):
    fetch: FetchParams
    prepare: PrepareParams
    train: TrainParams
    evaluate: EvaluateParams
    compare: CompareParams
    tracking: TrackingParams


def as_dict(params: Params) -> dict:
    """Plain data (tuples become lists), e.g. for logging."""
    return msgspec.to_builtins(params)


def _coerce_floats(raw: object) -> object:
    """YAML reads `1e-6` as a string and `1` as an int; strict types want floats where floats are meant."""
    float_keys = {
        ("prepare", "test_fraction"),
        ("train", "lr"),
        ("evaluate", "threshold"),
        ("compare", "atol"),
        ("compare", "rtol"),
    }
    if not isinstance(raw, dict):
        return raw
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    for section, key in float_keys:
        block = out.get(section)
        if isinstance(block, dict) and key in block:
            value = block[key]
            if isinstance(value, int) and not isinstance(value, bool):
                block[key] = float(value)
            elif isinstance(value, str):
                with contextlib.suppress(ValueError):  # left as text, the validator names the key
                    block[key] = float(value)
    return out


# --- one line per problem, naming the key ------------------------------------------------------------

_AT = re.compile(r"^(?P<msg>.*) - at `\$(?P<path>[^`]*)`$")
_BOUND = re.compile(r"^Expected `(?P<type>\w+)` (?P<op>>=|<=|>|<) (?P<bound>\S+)$")
_WORDS = {">": "greater than", ">=": "at least", "<": "less than", "<=": "at most"}
_TYPES = {"int": "an integer", "float": "a number", "str": "text", "object": "a mapping", "array": "a list"}


def _struct_at(keys: list[str]) -> type[_Section] | None:
    """The section type reached by following `keys` from Params (None past a non-section)."""
    struct: type = Params
    for key in keys:
        hint = typing.get_type_hints(struct).get(key)
        if not (isinstance(hint, type) and issubclass(hint, _Section)):
            return None
        struct = hint
    return struct


def _value_at(raw: object, keys: list[str]) -> object:
    for key in keys:
        if isinstance(raw, dict):
            raw = raw.get(key)
        elif isinstance(raw, list | tuple) and key.isdigit() and int(key) < len(raw):
            raw = raw[int(key)]
        else:
            return None
    return raw


def _bound(value: str) -> str:
    number = float(value)
    return str(int(number)) if number.is_integer() and abs(number) < 2**53 else value


def _allowed(keys: list[str]) -> str:
    """The permitted values of the Literal field at `keys` (list items included), quoted."""
    names = [k for k in keys if not k.isdigit()]
    struct = _struct_at(names[:-1]) if names else None
    hint = typing.get_type_hints(struct, include_extras=True).get(names[-1]) if struct else None
    while typing.get_origin(hint) in (Annotated, tuple):
        hint = typing.get_args(hint)[0]
    return ", ".join(repr(v) for v in typing.get_args(hint)) if typing.get_origin(hint) is Literal else "?"


def _describe(message: str, raw: object) -> str:
    found = _AT.match(message)
    msg, path = (found["msg"], found["path"]) if found else (message, "")
    keys = [k for k in re.split(r"[.\[\]]+", path) if k]
    key = ".".join(k if not k.isdigit() else f"[{k}]" for k in keys).replace(".[", "[")
    if m := re.match(r"Object contains unknown field `(?P<field>[^`]+)`", msg):
        field = m["field"]
        struct = _struct_at(keys)
        known = list(struct.__struct_fields__) if struct else []
        present = _value_at(raw, keys) or {}
        missing = [k for k in known if k not in present]
        # A renamed key shows up as one unknown and one missing key in the same section: pair them.
        guess = difflib.get_close_matches(field, missing, n=1, cutoff=0) if missing else []
        guess = guess or difflib.get_close_matches(field, known, n=1, cutoff=0.5)
        hint = f" (did you mean {'.'.join([*keys, guess[0]])}?)" if guess else ""
        return f"{'.'.join([*keys, field])}: unknown key{hint}"
    if m := re.match(r"Object missing required field `(?P<field>[^`]+)`", msg):
        return f"{'.'.join([*keys, m['field']])}: missing"
    value = _value_at(raw, keys)
    got = f" (got {value!r})"
    where = f"{key}: " if key else "the file: "
    if isinstance(value, float) and math.isnan(value):  # NaN fails every bound; what it lacks is being finite
        return f"{where}must be finite{got}"
    if m := _BOUND.match(msg):
        return f"{where}must be {_WORDS[m['op']]} {_bound(m['bound'])}{got}"
    if m := re.match(r"Expected `(?P<want>\w+)`, got `\w+`", msg):
        return f"{where}must be {_TYPES.get(m['want'], m['want'])}{got}"
    if msg.startswith("Invalid enum value"):
        return f"{where}must be one of {_allowed(keys)}{got}"
    if msg.startswith("Expected `str` matching regex") and keys[-1:] == ["sha256"]:
        return f"{where}must be 64 lowercase hex digits{got}"
    if re.match(r"Expected `(?:array|str)` of length >= 1$", msg):
        return f"{where}must not be empty{got}"
    if m := re.match(r"Expected `(?:array|str)` of length (?P<rule>[^,]*)", msg):
        return f"{where}must have length {m['rule']}{got}"
    if ": " in msg and not msg.startswith("Expected"):  # our own checks: "<field>: <problem>"
        field, problem = msg.split(": ", 1)
        return f"{'.'.join([*keys, field])}: {problem}"
    return f"{where}{msg}{got}"


def parse_params(raw: object, source: str = "params.yaml") -> Params:
    """Validate an already-loaded mapping; raises ParamsError with one line naming the first problem."""
    raw = _coerce_floats(raw)
    try:
        return msgspec.convert(raw, Params)
    except msgspec.ValidationError as exc:
        raise ParamsError(f"{source}: {_describe(str(exc), raw)}") from None


def load_params(path: Path | str = "params.yaml") -> Params:
    """Read and validate params.yaml."""
    raw = _read(Path(path))
    return parse_params(raw, str(path))


def load_section(path: Path | str, section: type[S]) -> S:
    """Read params.yaml and validate one section only (a stage's own, what its dvc.yaml `params:` names),
    with the same one-line messages; the other sections are not looked at."""
    raw = _coerce_floats(_read(Path(path)))
    (name,) = (k for k, v in typing.get_type_hints(Params).items() if v is section)
    only = msgspec.defstruct(f"Only{section.__name__}", [(name, section)])
    try:
        return getattr(msgspec.convert(raw, only), name)
    except msgspec.ValidationError as exc:
        raise ParamsError(f"{path}: {_describe(str(exc), raw)}") from None


def _at(mark: yaml.Mark | None) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"


def _yaml_where(exc: yaml.MarkedYAMLError) -> str:
    """Where the mistake is. A bracket left open is noticed only on a later line (the parser's problem
    mark); the line to fix is where the bracket opened (its context mark), so that one leads."""
    if exc.context_mark is not None and (exc.context or "").startswith("while parsing a flow"):
        what = exc.context.removeprefix("while parsing a ")
        return (f"{_at(exc.context_mark)}: this {what} is not closed ({exc.problem} at "
                f"{_at(exc.problem_mark)})")  # fmt: skip
    return f"{_at(exc.problem_mark)}: {exc.problem}"


def _read(path: Path) -> object:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ParamsError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        raw = safe_yaml(text)
    except yaml.MarkedYAMLError as exc:
        raise ParamsError(f"{path}: YAML syntax error at {_yaml_where(exc)}") from None
    return raw

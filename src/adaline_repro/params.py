"""params.yaml -> frozen, validated objects; the only module that reads params.yaml."""

from __future__ import annotations

import contextlib
import difflib
import math
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

BACKENDS = ("manual", "autograd", "module")
FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
SPECIES = ("setosa", "versicolor", "virginica")

Backend = Literal["manual", "autograd", "module"]
Feature = Literal["sepal_length", "sepal_width", "petal_length", "petal_width"]
Species = Literal["setosa", "versicolor", "virginica"]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class ParamsError(ValueError):
    """params.yaml is missing, unreadable or invalid; the message is one line naming the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class FetchParams(_Section):
    """Where the raw Iris table comes from; sha256 pins its content whatever the source."""

    source: Literal["sklearn", "path", "url"]
    location: str = ""
    sha256: Sha256

    @model_validator(mode="after")
    def _location_fits_source(self) -> FetchParams:
        if self.source == "sklearn" and self.location:
            raise ValueError("location must be empty when source is 'sklearn'")
        if self.source == "path" and not self.location:
            raise ValueError("location must name a file when source is 'path'")
        if self.source == "url" and not self.location.startswith("https://"):
            raise ValueError("location must be an https:// URL when source is 'url'")
        return self


class PrepareParams(_Section):
    """Which two classes and two features to keep, and how to split them."""

    classes: tuple[Species, Species]
    features: tuple[Feature, Feature]
    test_fraction: float = Field(gt=0, lt=1)
    seed: int = Field(ge=0, lt=2**64)  # what torch.manual_seed accepts

    @field_validator("classes", "features")
    @classmethod
    def _distinct(cls, value: tuple[str, str]) -> tuple[str, str]:
        if value[0] == value[1]:
            raise ValueError(f"the two entries must differ, got {value[0]!r} twice")
        return value


class TrainParams(_Section):
    """Seeded minibatch SGD shared by every backend."""

    backends: tuple[Backend, ...] = Field(min_length=1)
    epochs: int = Field(gt=0)
    lr: float = Field(gt=0)
    batch_size: int = Field(gt=0)
    seed: int = Field(ge=0, lt=2**64)  # what torch.manual_seed accepts
    dtype: Literal["float32", "float64"]
    device: Literal["cpu", "cuda", "auto"]

    @field_validator("lr")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be finite")
        return value

    @field_validator("backends")
    @classmethod
    def _no_duplicates(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError(f"each backend may appear once, got {list(value)}")
        return value


class EvaluateParams(_Section):
    threshold: float


class CompareParams(_Section):
    """Float quantities pass when |a - b| <= atol + rtol * max(|a|, |b|)."""

    atol: float = Field(ge=0)
    rtol: float = Field(ge=0)


class TrackingParams(_Section):
    experiment: str = Field(min_length=1)


class Params(_Section):
    fetch: FetchParams
    prepare: PrepareParams
    train: TrainParams
    evaluate: EvaluateParams
    compare: CompareParams
    tracking: TrackingParams


def _coerce_floats(raw: object) -> object:
    """YAML reads `1e-6` as a string and `1` as an int; strict models want floats where floats are meant."""
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
    for section in ("prepare", "train"):
        block = out.get(section)
        if isinstance(block, dict):
            for key in ("classes", "features", "backends"):
                if isinstance(block.get(key), list):
                    block[key] = tuple(block[key])
    return out


def _known_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        if field is None or not isinstance(field.annotation, type):
            return []
        model = field.annotation
    return list(model.model_fields)


def _describe(error: dict, errors: list[dict]) -> str:
    loc = error["loc"]
    key = ".".join(str(p) for p in loc)
    if error["type"] == "extra_forbidden":
        # A renamed key shows up as one unknown and one missing key in the same section: pair them.
        missing = [str(e["loc"][-1]) for e in errors if e["type"] == "missing" and e["loc"][:-1] == loc[:-1]]
        guess = missing[:1] or difflib.get_close_matches(str(loc[-1]), _known_keys(Params, loc), n=1, cutoff=0.5)
        hint = f" (did you mean {'.'.join([*map(str, loc[:-1]), guess[0]])}?)" if guess else ""
        return f"{key}: unknown key{hint}"
    if error["type"] == "missing":
        return f"{key}: missing"
    message = error["msg"].removeprefix("Value error, ")
    return f"{key}: {message} (got {error.get('input')!r})"


def parse_params(raw: object, source: str = "params.yaml") -> Params:
    """Validate an already-loaded mapping; raises ParamsError with one line per the first problem."""
    try:
        return Params.model_validate(_coerce_floats(raw))
    except ValidationError as exc:
        errors = exc.errors()
        # Unknown keys first: a typo also makes the intended key "missing", and the typo is the news.
        first = min(errors, key=lambda e: e["type"] != "extra_forbidden")
        raise ParamsError(f"{source}: {_describe(first, errors)}") from None


def load_params(path: Path | str = "params.yaml") -> Params:
    """Read and validate params.yaml."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ParamsError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        raise ParamsError(f"{path}: YAML syntax error at {where}: {exc.problem}") from None
    return parse_params(raw, str(path))

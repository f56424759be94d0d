"""params.yaml parsing: defaults load, and every mistake is one line that names the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from adaline_repro.backends import BACKENDS
from adaline_repro.core.params import FetchParams, ParamsError, PrepareParams, load_params, load_section, parse_params
from tests.conftest import REPO


def _raw() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def _with(section: str, key: str, value: object) -> dict:
    raw = _raw()
    raw[section][key] = value
    return raw


def test_repository_params_hold_the_lecture_defaults(params):
    """The committed params.yaml is the lecture's setting."""
    assert params.train.backends == BACKENDS  # every registered backend, the lecture's three first
    assert BACKENDS[:3] == ("manual", "autograd", "module")
    assert (params.train.epochs, params.train.lr, params.train.batch_size, params.train.seed) == (20, 0.01, 10, 123)
    assert params.prepare.classes == ("versicolor", "virginica")
    assert params.prepare.features == ("sepal_width", "petal_length")
    assert params.train.device == "cpu"
    assert params.train.dtype == "float32"


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("train", "lr", -0.01, "params.yaml: train.lr: must be greater than 0 (got -0.01)"),
        ("train", "lr", float("inf"), "params.yaml: train.lr: must be finite (got inf)"),
        ("train", "lr", "fast", "params.yaml: train.lr: must be a number (got 'fast')"),
        ("train", "epochs", 0, "params.yaml: train.epochs: must be at least 1 (got 0)"),
        ("train", "epochs", 2.5, "params.yaml: train.epochs: must be an integer (got 2.5)"),
        ("train", "epochs", True, "params.yaml: train.epochs: must be an integer (got True)"),
        ("train", "device", "tpu", "params.yaml: train.device: must be one of 'cpu', 'cuda', 'auto' (got 'tpu')"),
        (
            "train",
            "backends",
            ["manual", "manual"],
            ("params.yaml: train.backends: each backend may appear once, got ['manual', 'manual']"),
        ),
        ("train", "backends", [], "params.yaml: train.backends: must not be empty (got [])"),
        (
            "train",
            "backends",
            ["manual", "jax"],
            f"params.yaml: train.backends[1]: must be one of {', '.join(map(repr, BACKENDS))} (got 'jax')",
        ),
        (
            "train",
            "seed",
            2**64,
            (
                "params.yaml: train.seed: must be less than 2**64, what torch.manual_seed accepts "
                "(got 18446744073709551616)"
            ),
        ),
        ("prepare", "test_fraction", 1.0, "params.yaml: prepare.test_fraction: must be less than 1 (got 1.0)"),
        (
            "prepare",
            "classes",
            ["setosa", "setosa"],
            ("params.yaml: prepare.classes: the two entries must differ, got 'setosa' twice"),
        ),
        ("compare", "atol", -1e-9, "params.yaml: compare.atol: must be at least 0 (got -1e-09)"),
        ("fetch", "sha256", "abc", "params.yaml: fetch.sha256: must be 64 lowercase hex digits (got 'abc')"),
        ("tracking", "experiment", "", "params.yaml: tracking.experiment: must not be empty (got '')"),
        ("train", "lr", float("nan"), "params.yaml: train.lr: must be finite (got nan)"),
        ("train", "batch_size", 0, "params.yaml: train.batch_size: must be at least 1 (got 0)"),
        ("train", "seed", -1, "params.yaml: train.seed: must be at least 0 (got -1)"),
        ("prepare", "test_fraction", 0, "params.yaml: prepare.test_fraction: must be greater than 0 (got 0.0)"),
        (
            "prepare",
            "classes",
            ["versicolor", "daisy"],
            "params.yaml: prepare.classes[1]: must be one of 'setosa', 'versicolor', 'virginica' (got 'daisy')",
        ),
        (
            "prepare",
            "features",
            ["sepal_width", "sepal_width"],
            "params.yaml: prepare.features: the two entries must differ, got 'sepal_width' twice",
        ),
    ],
)
def test_invalid_value_is_one_line_naming_the_key(section, key, value, message):
    """A bad value is reported as `file: section.key: problem`, on one line."""
    with pytest.raises(ParamsError) as caught:
        parse_params(_with(section, key, value))
    assert str(caught.value) == message


def test_unknown_key_suggests_the_closest_one():
    """A typo gets a did-you-mean with the full key."""
    raw = _raw()
    raw["train"]["learning_rate"] = raw["train"].pop("lr")
    with pytest.raises(ParamsError, match=r"train\.learning_rate: unknown key \(did you mean train\.lr\?\)"):
        parse_params(raw)


def test_missing_key_is_named():
    raw = _raw()
    del raw["train"]["seed"]
    with pytest.raises(ParamsError, match=r"^params\.yaml: train\.seed: missing$"):
        parse_params(raw)


def test_yaml_syntax_error_gives_line_and_column(tmp_path: Path):
    """Broken YAML is reported with its position, not a traceback."""
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  lr: 0.01\n   epochs: 3\n")
    with pytest.raises(ParamsError, match=r"^\S+: YAML syntax error at line 3, column 10: "):
        load_params(path)


def test_a_bracket_left_open_is_reported_on_the_line_it_opens(tmp_path: Path):
    """The parser notices an unclosed `[` on the next line; the message leads with the line to fix."""
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  lr: [0.01\n  epochs: 3\n")
    with pytest.raises(ParamsError) as caught:
        load_params(path)
    assert str(caught.value) == (
        f"{path}: YAML syntax error at line 2, column 7: this flow sequence is not closed "
        "(did not find expected ',' or ']' at line 3, column 9)"
    )


def test_a_stage_s_section_is_validated_without_the_others(tmp_path: Path):
    """fetch and prepare read their own section only: another section's mistake (here an unknown backend,
    which would need the registry) is not theirs, and their own mistakes keep the full key."""
    raw = _raw()
    raw["train"]["backends"] = ["jax"]
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert load_section(path, FetchParams) == load_params(REPO / "params.yaml").fetch
    with pytest.raises(ParamsError, match=r"train\.backends\[0\]: must be one of"):
        load_params(path)
    raw["prepare"]["test_fraction"] = 2
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ParamsError) as caught:
        load_section(path, PrepareParams)
    assert str(caught.value) == f"{path}: prepare.test_fraction: must be less than 1 (got 2.0)"


def test_url_source_must_be_https():
    raw = _with("fetch", "source", "url")
    raw["fetch"]["location"] = "http://example.org/iris.data"
    with pytest.raises(ParamsError, match=r"fetch\.location: must be an https:// URL"):
        parse_params(raw)


def test_exponent_without_dot_is_read_as_a_float():
    """YAML 1.1 reads `1e-6` as text; params still take it as the number it means."""
    assert parse_params(_with("compare", "atol", "1e-6")).compare.atol == 1e-6

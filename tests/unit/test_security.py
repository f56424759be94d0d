"""Security promises: YAML is read with safe loaders only; nothing is unpickled; telemetry is off; servers
bind to loopback by default. (Credentials: tests/e2e/test_security.py.)"""

from __future__ import annotations

import ast
import re

import pytest

from adaline_repro import cli
from tests.conftest import REPO

SRC = REPO / "src" / "adaline_repro"


def _calls(tree: ast.AST, dotted: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and ast.unparse(n.func) == dotted]


def test_yaml_is_read_with_safe_loaders_only():
    """One function parses YAML (files.safe_yaml), with a safe loader; no other module calls yaml.load."""
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for call in _calls(tree, "yaml.load"):
            assert path.name == "files.py", f"{path.name}: {ast.unparse(call)}"
            loader = next(k.value for k in call.keywords if k.arg == "Loader")
            assert "SafeLoader" in ast.unparse(loader)
        assert not _calls(tree, "yaml.unsafe_load"), path.name
        assert not _calls(tree, "yaml.full_load"), path.name


def test_nothing_is_unpickled():
    """Models are JSON; neither pickle nor torch.load (which unpickles) appears in the code."""
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"^\s*import pickle|torch\.load\(|pickle\.loads?\(", text, re.M), path.name


def test_telemetry_is_off_in_every_process():
    """The entry point and the module that imports MLflow both turn MLflow's and DVC's telemetry off."""
    entry = (REPO / "pipeline").read_text()
    for variable in ("DVC_NO_ANALYTICS=1", "MLFLOW_DISABLE_TELEMETRY=true", "DO_NOT_TRACK=true"):
        assert variable in entry
    assert 'os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")' in (SRC / "tracking" / "store.py").read_text()
    assert "analytics = false" in (REPO / ".dvc" / "config").read_text()


@pytest.mark.parametrize("command", ["ui", "server"])
def test_servers_bind_to_loopback_by_default(command):
    args = cli._parser().parse_args([command])
    assert args.host == "127.0.0.1"

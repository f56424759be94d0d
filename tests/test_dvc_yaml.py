"""dvc.yaml: each stage depends on exactly the source modules it imports, and the light stages stay light."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import REPO

# What each stage's command runs, as code to import in a fresh interpreter.
STAGE_CODE = {
    "fetch": "import adaline_repro.fetch",
    "prepare": "import adaline_repro.prepare",
    # train first checks that a tracking server answers (preflight), then trains.
    "train": "import adaline_repro.preflight, adaline_repro.train, adaline_repro.backends as b; "
    "[b.get(n) for n in b.BACKENDS]",
    "evaluate": "import adaline_repro.evaluate",
    # track draws the figure in a second process (figures) while it imports MLflow (tracking).
    "track": "import adaline_repro.track, adaline_repro.tracking, adaline_repro.figures, adaline_repro.model",
    # The passing path only: on a failure compare also logs, but a failing stage is never cached.
    "compare": "import adaline_repro.compare",
}
NOT_STAGE_CODE = {"src/adaline_repro/__init__.py"}


def _python(code: str) -> str:
    """stdout of `code` run in a fresh interpreter that sees only src/ (what a stage process sees)."""
    env = {"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True, env=env
    ).stdout


def _imported(code: str) -> tuple[set[str], set[str]]:
    """(source files of adaline_repro imported, heavy third-party packages imported) by `code`."""
    probe = (
        f"{code}\nimport sys, json\n"
        "mods = [m.__file__ for k, m in sys.modules.items() if k.startswith('adaline_repro') and m.__file__]\n"
        "heavy = ('torch', 'mlflow', 'sklearn', 'pandas', 'pydantic')\n"
        "print(json.dumps([mods, [k for k in heavy if k in sys.modules]]))"
    )
    files, heavy = json.loads(_python(probe))
    return {str(Path(f).relative_to(REPO)) for f in files} - NOT_STAGE_CODE, set(heavy)


def _stages() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


@pytest.mark.parametrize("stage", sorted(STAGE_CODE))
def test_stage_depends_on_every_module_it_imports(stage):
    """A change to any module a stage runs re-runs that stage, and nothing else is listed."""
    deps = {d for d in _stages()[stage]["deps"] if d.startswith("src/")}
    imported, _ = _imported(STAGE_CODE[stage])
    assert deps == imported, f"{stage}: declared {sorted(deps)}, imports {sorted(imported)}"


def test_every_stage_is_covered():
    assert set(_stages()) == set(STAGE_CODE)


@pytest.mark.parametrize(
    ("stage", "allowed"),
    [
        ("fetch", set()),
        ("prepare", set()),  # torch's split and statistics, replicated in numpy
        ("train", {"torch"}),
        ("evaluate", set()),
        ("compare", set()),
        ("track", {"mlflow", "pandas", "pydantic"}),  # MLflow's own imports
    ],
)
def test_stages_import_only_what_they_need(stage, allowed):
    """Each stage is a fresh process and torch or mlflow cost seconds: only stages that use them import them."""
    _, heavy = _imported(STAGE_CODE[stage])
    assert heavy <= allowed


def test_training_manual_does_not_pay_for_the_optimizer():
    """Building a torch.optim optimizer imports torch._dynamo (~2 s); only the module backend needs one."""
    code = (
        "import sys, torch, adaline_repro.backends as b\n"
        "b.get('manual')(2, 0.01, torch.float32, torch.device('cpu'))\n"
        "b.get('autograd')(2, 0.01, torch.float32, torch.device('cpu'))\n"
        "print('torch._dynamo' in sys.modules)"
    )
    assert _python(code).strip() == "False"

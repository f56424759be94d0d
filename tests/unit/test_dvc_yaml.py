"""dvc.yaml: each stage depends on exactly the source modules it imports, and the light stages stay light."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from adaline_repro.backends import BACKENDS
from adaline_repro.paths import pipeline_paths
from adaline_repro.train import orders_digest, shuffle_orders
from tests.conftest import REPO

# What each stage's command runs, as code to import in a fresh interpreter.
STAGE_CODE = {
    "fetch": "import adaline_repro.fetch",
    "prepare": "import adaline_repro.prepare",
    # train@<backend> first checks that a tracking server answers (preflight), then trains that backend.
    **{
        f"train@{name}": "import adaline_repro.repro.preflight, adaline_repro.workspace, adaline_repro.train as t\n"
        f"t.backends.get({name!r})"
        for name in BACKENDS
    },
    "evaluate": "import adaline_repro.evaluate",
    # track draws the figure in a second process (figures) while it imports MLflow (tracking).
    "track": "import adaline_repro.track, adaline_repro.mlflow_store, adaline_repro.figures, adaline_repro.workspace",
    # The passing path only: on a failure compare also logs, but a failing stage is never cached.
    "compare": "import adaline_repro.compare",
}
# Package files that run no stage code: the top-level one applies the CPU pins (cpu_pins.py is the dep);
# repro/ holds a docstring only.
NOT_STAGE_CODE = {"src/adaline_repro/__init__.py", "src/adaline_repro/repro/__init__.py"}


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


def _resolve(text: str) -> str:
    """`${paths.<name>}` replaced as DVC does, from dvc.yaml's own `paths`."""
    paths = dataclasses.asdict(pipeline_paths(REPO))
    return re.sub(r"\$\{paths\.(\w+)\}", lambda m: paths[m.group(1)], text)


def _stages() -> dict:
    """dvc.yaml's stages, each matrix expanded over every registered backend as DVC expands it over
    train.backends (so a backend outside today's params.yaml is checked too)."""
    stages = {}
    for name, spec in yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"].items():
        deps = [_resolve(d) for d in spec["deps"]]
        if "matrix" not in spec:
            stages[name] = {**spec, "deps": deps}
            continue
        assert spec["matrix"] == {"backend": "${train.backends}"}
        for backend in BACKENDS:
            stages[f"{name}@{backend}"] = {**spec, "deps": [d.replace("${item.backend}", backend) for d in deps]}
    return stages


@pytest.mark.parametrize("stage", sorted(STAGE_CODE))
def test_stage_depends_on_every_module_it_imports(stage):
    """A change to any module a stage runs re-runs that stage, and nothing else is listed."""
    deps = {d for d in _stages()[stage]["deps"] if d.startswith("src/")}
    imported, _ = _imported(STAGE_CODE[stage])
    assert deps == imported, f"{stage}: declared {sorted(deps)}, imports {sorted(imported)}"


def test_the_committed_lock_records_exactly_each_stage_s_dependencies(params):
    """DVC does not notice a dependency removed from dvc.yaml; this does (the lock would vouch for a stale
    list, and a forced re-run would rewrite it)."""
    lock = yaml.safe_load((REPO / "dvc.lock").read_text())["stages"]
    stages = {n: s for n, s in _stages().items() if "@" not in n or n.split("@")[1] in params.train.backends}
    assert set(lock) == set(stages)
    for name, spec in stages.items():
        assert {d["path"] for d in lock[name]["deps"]} == set(spec["deps"]), name


def test_every_stage_is_covered():
    assert set(_stages()) == set(STAGE_CODE)


@pytest.mark.parametrize(
    ("stage", "allowed"),
    [
        ("fetch", set()),
        ("prepare", set()),  # torch's split and statistics, replicated in numpy
        *((f"train@{name}", {"torch"}) for name in BACKENDS),
        ("evaluate", set()),
        ("compare", set()),
        ("track", {"mlflow", "pandas", "pydantic"}),  # MLflow's own imports
    ],
)
def test_stages_import_only_what_they_need(stage, allowed):
    """Each stage is a fresh process and torch or mlflow cost seconds: only stages that use them import them."""
    _, heavy = _imported(STAGE_CODE[stage])
    assert heavy <= allowed


# torch.optim's first optimizer imports torch._dynamo (seconds); only the module backend builds one.
_NEEDS_DYNAMO = {"module"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_train_stage_pays_only_for_its_backend_and_draws_the_same_shuffles(backend, data_dir, params, tmp_path):
    """The stage's own command in a fresh process: torch._dynamo is imported only where the backend needs it,
    and the shuffle orders it prints are those every other backend's stage draws from train.seed."""
    args = [
        "train",
        "--params",
        str(REPO / "params.yaml"),
        "--backend",
        backend,
        "--train",
        str(data_dir / "train.csv"),
    ]
    args += ["--model", str(tmp_path / "model.json"), "--curve", str(tmp_path / "curve.csv")]
    args += ["--steps", str(tmp_path / "steps.csv")]
    code = (
        "import sys\nfrom adaline_repro import cli\n"
        f"assert cli.main({args!r}) == 0\n"
        "print('dynamo', 'torch._dynamo' in sys.modules)"
    )
    out = _python(code).splitlines()
    assert out[-1] == f"dynamo {backend in _NEEDS_DYNAMO}"
    n = len((data_dir / "train.csv").read_text().splitlines()) - 1
    expected = orders_digest(shuffle_orders(n, params.train.epochs, params.train.seed))
    assert out[0].startswith(f"train@{backend}: ")
    assert out[0].endswith(f", shuffle orders {expected}")

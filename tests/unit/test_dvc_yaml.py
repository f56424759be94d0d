"""dvc.yaml: each stage's code deps cover every source module its real command imports (every Python process it
starts, as DVC runs it), each names code that command runs, and the light stages stay light."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from adaline_repro.backends import BACKENDS
from adaline_repro.core.checkout import pipeline_paths
from adaline_repro.ops.scratch import copy_worktree
from adaline_repro.stages.train import orders_digest, shuffle_orders
from tests.conftest import PATHS, REPO, VENV

# Imported by every Python process at start-up, before it writes anything down: it records, when that
# process exits, which modules of the package it loaded and which heavy third-party packages.
_RECORDER = """
import atexit, json, os, sys

def _record():
    # By the module's own name: `python -m adaline_repro` runs adaline_repro/__main__.py as __main__.
    named = {getattr(getattr(m, "__spec__", None), "name", None) or k: m for k, m in list(sys.modules.items())}
    mods = sorted(m.__file__ for k, m in named.items() if k.split(".")[0] == "adaline_repro"
                  and getattr(m, "__file__", None))
    heavy = [k for k in ("torch", "torch._dynamo", "mlflow", "sklearn", "pandas", "pydantic") if k in sys.modules]
    out = os.path.join(os.environ["ADALINE_IMPORTS_OUT"], f"{os.getpid()}.json")
    with open(out, "w") as f:
        json.dump({"argv": sys.argv, "modules": mods, "heavy": heavy}, f)

atexit.register(_record)
"""


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
            stages[name] = {**spec, "cmd": _resolve(spec["cmd"]), "deps": deps}
            continue
        assert spec["matrix"] == {"backend": "${train.backends}"}
        for backend in BACKENDS:
            stages[f"{name}@{backend}"] = {
                **spec,
                "cmd": _resolve(spec["cmd"]).replace("${item.backend}", backend),
                "deps": [d.replace("${item.backend}", backend) for d in deps],
            }
    return stages


@dataclasses.dataclass(frozen=True)
class Ran:
    stdout: str
    modules: set[str]  # source files of the package, relative to the checkout, over every process
    heavy: set[str]  # heavy packages, over every process


@pytest.fixture(scope="session")
def checkout(tmp_path_factory, data_dir) -> tuple[Path, dict]:
    """A copy of the repository with the committed results and the prepared data in place: every stage's
    inputs, so each stage's command can run alone, in any order, and write the committed bytes again."""
    root = copy_worktree(REPO, tmp_path_factory.mktemp("stages"))
    made = {PATHS.raw: "raw.csv", PATHS.train: "train.csv", PATHS.test: "test.csv", PATHS.scaler: "scaler.json"}
    for path, name in made.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(data_dir / name, root / path)
    probe = tmp_path_factory.mktemp("probe")
    (probe / "sitecustomize.py").write_text(_RECORDER)
    env = {
        **os.environ,
        "ADALINE_VENV": str(VENV),
        "PYTHONPATH": str(probe),
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path_factory.mktemp('store')}/mlflow.db",
    }
    env.pop("DVC_ROOT", None)
    return root, env


def _run(checkout: tuple[Path, dict], stage: str, out: Path) -> Ran:
    """The stage's command from dvc.yaml, as DVC runs it (through ./pipeline, in the checkout)."""
    root, env = checkout
    done = subprocess.run(shlex.split(_stages()[stage]["cmd"]), cwd=root, env={**env, "ADALINE_IMPORTS_OUT": str(out)},
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    records = [json.loads(p.read_text()) for p in out.glob("*.json")]
    assert records, "no Python process ran"
    modules = {str(Path(m).relative_to(root)) for r in records for m in r["modules"]}
    return Ran(done.stdout, modules, {h for r in records for h in r["heavy"]})


# What each stage may import beyond the standard library, numpy, msgspec and PyYAML: each library costs its
# stage's process a second or more, so only the stage that uses it imports it (torch.optim's first optimizer
# imports torch._dynamo, which only the module backend builds).
_ALLOWED_HEAVY = {
    "fetch": {"sklearn", "pandas"},  # the bundled Iris table, through its package (which imports pandas)
    "prepare": {"pandas", "torch"},  # read_csv, then the lecture's split and statistics
    **{f"train@{name}": {"torch", *({"torch._dynamo"} if name == "module" else set())} for name in BACKENDS},
    "evaluate": set(),
    "compare": set(),
    "track": {"mlflow", "pandas", "pydantic"},  # MLflow's own imports
}


@pytest.mark.parametrize("stage", sorted(_ALLOWED_HEAVY))
def test_a_stage_s_deps_cover_every_module_its_command_imports_and_nothing_heavy_it_does_not_need(
    checkout, stage, params, data_dir, tmp_path
):
    """A change to any module a stage's command runs re-runs that stage (a folder dep covers its modules);
    each dep names code the command runs (a file it imports, a folder it imports from); each stage process
    imports only the heavy packages its stage uses (train@module alone pays for dynamo); each train stage
    draws the shuffle orders every other backend's stage draws from train.seed."""
    ran = _run(checkout, stage, tmp_path)
    deps = {d for d in _stages()[stage]["deps"] if d.startswith("src/")}
    uncovered = {m for m in ran.modules if not any(m == d or m.startswith(d + "/") for d in deps)}
    assert not uncovered, f"{stage}: imports {sorted(uncovered)}, which no dep covers"
    unused = {d for d in deps if not any(m == d or m.startswith(d + "/") for m in ran.modules)}
    assert not unused, f"{stage}: lists {sorted(unused)}, which its command does not run"
    if stage.startswith("train@"):  # exactly: the heavy imports are what a train stage is for
        assert ran.heavy == _ALLOWED_HEAVY[stage], ran.heavy
        _assert_the_shared_shuffles(ran, stage.split("@")[1], params, data_dir)
    else:
        assert ran.heavy <= _ALLOWED_HEAVY[stage], ran.heavy


def _assert_the_shared_shuffles(ran: Ran, backend: str, params, data_dir: Path) -> None:
    n = len((data_dir / "train.csv").read_text().splitlines()) - 1
    expected = orders_digest(shuffle_orders(n, params.train.epochs, params.train.seed))
    first = ran.stdout.splitlines()[0]
    assert first.startswith(f"train@{backend}: ")
    assert first.endswith(f", shuffle orders {expected}")


def test_the_committed_lock_records_exactly_each_stage_s_dependencies(params):
    """DVC does not notice a dependency removed from dvc.yaml; this does (the lock would vouch for a stale
    list, and a forced re-run would rewrite it)."""
    lock = yaml.safe_load((REPO / "dvc.lock").read_text())["stages"]
    stages = {n: s for n, s in _stages().items() if "@" not in n or n.split("@")[1] in params.train.backends}
    assert set(lock) == set(stages)
    for name, spec in stages.items():
        assert {d["path"] for d in lock[name]["deps"]} == set(spec["deps"]), name


def test_every_stage_is_checked():
    assert set(_stages()) == set(_ALLOWED_HEAVY)

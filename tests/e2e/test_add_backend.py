"""A fourth backend with README's three steps and nothing else ("Adding a backend"): a copy of `manual` under
a new name. `./pipeline repro` trains and compares it without re-running fetch or prepare (they do not
depend on the registry), and the tests that parametrize over the registry take it in with no test edited
(collected here; what they assert is pinned by running them on the registered backends)."""

from __future__ import annotations

import re

from tests.conftest import VENV, run_cmd

NAME = "handmade"
# The tests that hold every registered backend: its gradient against autograd's and a step against it,
# its training and the shuffles it shares, and its train stage's deps against what its process imports.
REGISTRY_TESTS = ("tests/unit/backends/test_backends.py", "tests/unit/stages/test_train.py",
                  "tests/unit/test_dvc_yaml.py")  # fmt: skip


def test_a_backend_added_in_readme_s_three_steps_is_trained_compared_and_taken_in_by_the_tests(ran_clone):
    root, env = ran_clone  # a fresh clone has no data/: it has run once to make it
    backends = root / "src" / "adaline_repro" / "backends"
    # 1. Write src/adaline_repro/backends/<name>.py, a Backend subclass.
    source = (backends / "manual.py").read_text()
    (backends / f"{NAME}.py").write_text(
        source.replace("class ManualBackend", "class HandmadeBackend").replace('name = "manual"', f'name = "{NAME}"')
    )
    # 2. Add its name to BACKENDS in backends/__init__.py (the registry).
    registry = (backends / "__init__.py").read_text()
    (backends / "__init__.py").write_text(re.sub(r"(BACKENDS = \(.*?)\)", rf'\1, "{NAME}")', registry, count=1))
    # 3. List it under train.backends in params.yaml.
    params = (root / "params.yaml").read_text()
    (root / "params.yaml").write_text(re.sub(r"(backends: \[.*?)\]", rf"\1, {NAME}]", params, count=1))
    changed = run_cmd(["git", "status", "--porcelain"], root, env).stdout.splitlines()
    assert sorted(line[3:] for line in changed) == sorted(
        ["params.yaml", "src/adaline_repro/backends/__init__.py", f"src/adaline_repro/backends/{NAME}.py"]
    )

    done = run_cmd(["./pipeline", "repro"], root, env)
    ran = re.findall(r"Running stage '([^']+)'", done.stdout)
    assert "fetch" not in ran
    assert "prepare" not in ran
    assert f"train@{NAME}" in ran
    assert "train@manual" in ran  # every train stage depends on the registry: it reads train.backends' names
    assert "compare: the backends agree" in done.stdout
    assert "dvc.lock" in run_cmd(["git", "diff", "--stat"], root, env).stdout

    collected = run_cmd([str(VENV / "bin" / "python"), "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                         *REGISTRY_TESTS], root, env).stdout  # fmt: skip
    for path in REGISTRY_TESTS:
        assert re.search(rf"^{re.escape(path)}::\S*\[[^\]]*{NAME}[^\]]*\]$", collected, re.MULTILINE), path

"""`./pipeline check --with SPEC` end to end in fresh clones, one test per verdict: another real numpy gives
the committed bytes (identical) and a second run reuses its venv; a local PyYAML wheel that reads every
float 1 % larger moves the results (drift, from update step 1, the learning rate named), one that reads them
1e-7 larger moves them within the tolerances (within tolerance); a version pip cannot find is broken with
pip's line. Each names the versions it ran, in the reports and in MLflow."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import mlflow
import pytest

from adaline_repro.backends import BACKENDS
from adaline_repro.core.errors import EXIT_BROKEN, EXIT_DRIFT, EXIT_INPUT, EXIT_OK, EXIT_STALE
from adaline_repro.ops import check_findings
from tests.conftest import VENV, make_clone, run_cmd
from tests.wheels import wheel

LOCKED_NUMPY, OTHER_NUMPY = "2.4.6", "2.3.5"  # requirements.lock's, and an older release pip can install


@pytest.fixture(scope="module")
def venvs(tmp_path_factory):
    """The tests' own venv cache: what one builds, a later one of the same files reuses."""
    return tmp_path_factory.mktemp("check-venvs")


def _check_with(tmp_path_factory, venvs, *specs):
    root, env = make_clone(tmp_path_factory)
    env["ADALINE_CHECK_VENVS"] = str(venvs)
    args = [arg for spec in specs for arg in ("--with", spec)]
    done = run_cmd(["./pipeline", "check", *args], root, env, check=False)
    report = root / "reports" / "check.json"
    return done, (json.loads(report.read_text()) if report.exists() else {}), root, env


def _logged(env):
    """The check runs in the clone's store: (tags, metrics) of each."""
    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("adaline-backends-checks")
    runs = client.search_runs([experiment.experiment_id]) if experiment else []
    return [(r.data.tags, r.data.metrics) for r in runs]


def test_another_numpy_gives_the_committed_bytes_and_a_second_run_reuses_its_venv(tmp_path_factory, venvs):
    done, report, root, env = _check_with(tmp_path_factory, venvs, f"numpy=={OTHER_NUMPY}")
    assert done.returncode == EXIT_OK, done.stdout + done.stderr
    assert report["with"]["changes"] == [{"name": "numpy", "locked": LOCKED_NUMPY, "now": OTHER_NUMPY}]
    assert report["with"]["reused"] is False
    cpu = report["devices"]["cpu"]
    assert (cpu["outcome"], cpu["compare_passed"], cpu["follows_lecture"]) == (check_findings.IDENTICAL, True, True)
    assert report["environment"]["now"]["numpy"] == OTHER_NUMPY  # the fingerprint of the venv the run used
    # ./pipeline used the venv as built: no set-up put the lock's numpy back
    venv = Path(report["with"]["venv"])
    numpy = run_cmd([str(venv / "bin" / "python"), "-c", "import numpy; print(numpy.__version__)"], root, env)
    assert numpy.stdout.strip() == OTHER_NUMPY
    assert not (venv / ".requirements.sha256").exists()
    text = (root / "reports" / "check.md").read_text()
    assert text.startswith(f"# Reproducibility check with numpy=={OTHER_NUMPY}: passed\n")
    assert f"| numpy | {LOCKED_NUMPY} | {OTHER_NUMPY} |" in text
    [(tags, metrics)] = _logged(env)
    assert tags["version.numpy"] == f"{LOCKED_NUMPY} -> {OTHER_NUMPY}"
    assert (tags["check.with"], tags["check.cpu.outcome"], metrics["exit_code"]) == (
        f"numpy=={OTHER_NUMPY}",
        "identical",
        0,
    )
    assert run_cmd(["git", "status", "--porcelain", "--", "requirements.lock"], root, env).stdout == ""

    again, report, _, _ = _check_with(tmp_path_factory, venvs, f"numpy=={OTHER_NUMPY}")
    assert again.returncode == EXIT_OK, again.stdout + again.stderr
    assert report["with"]["reused"] is True
    assert report["with"]["venv"] == str(venv)


def _yaml(code: str) -> str:
    """What the repository venv's Python prints for `code` after `import yaml, os`."""
    return subprocess.check_output([str(VENV / "bin" / "python"), "-c", f"import yaml, os; {code}"], text=True).strip()


def _float_scaling_pyyaml(folder: Path, factor: float) -> Path:
    """A wheel of the installed PyYAML's pure-Python package (libyaml's extension left out), whose float
    constructor returns every float `factor` x: params.yaml's lr 0.01 reads as 0.0101 in every stage."""
    installed = Path(_yaml("print(os.path.dirname(yaml.__file__))"))
    files = {f"yaml/{p.name}": p.read_bytes() for p in installed.glob("*.py")}
    original = b"            return sign*float(value)\n"
    assert files["yaml/constructor.py"].count(original) == 1
    files["yaml/constructor.py"] = files["yaml/constructor.py"].replace(
        original, f"            return sign*float(value)*{factor!r}\n".encode()
    )
    label = f"{factor:.7f}".replace(".", "x")  # a local version label: letters, digits and dots only
    return wheel(folder, "PyYAML", f"{_yaml('print(yaml.__version__)')}+floats{label}", files)


def test_a_pyyaml_reading_floats_1_percent_larger_is_drift_from_step_1_naming_the_learning_rate(
    tmp_path_factory, venvs
):
    built = _float_scaling_pyyaml(tmp_path_factory.mktemp("wheels"), 1.01)
    done, report, root, env = _check_with(tmp_path_factory, venvs, f"pyyaml @ {built.as_uri()}")
    assert done.returncode == EXIT_DRIFT, done.stdout + done.stderr
    [change] = report["with"]["changes"]
    assert (change["name"], change["now"]) == ("pyyaml", built.name.split("-")[1])
    cpu = report["devices"]["cpu"]
    assert cpu["outcome"] == check_findings.DRIFT
    assert cpu["compare_passed"] is True  # the backends still agree with each other, all at lr 0.0101
    assert cpu["largest_tolerance_ratio"] > 1
    for backend in BACKENDS:
        found = cpu["first_divergence"][backend]
        assert found["step"] == 1
        assert found["likely_cause"][0]["rule"] == "learning_rate"
        assert found["likely_cause"][0]["evidence"].startswith("fresh's learning rate is 1.01 x the configured one")
    text = (root / "reports" / "check.md").read_text()
    assert "- manual: first divergence at step 1 (epoch 1, batch 1); likely cause: fresh: learning rate" in text
    [(tags, metrics)] = _logged(env)
    assert tags["version.pyyaml"] == f"{change['locked']} -> {change['now']}"
    assert {metrics[f"cpu.first_divergence_step.{b}"] for b in BACKENDS} == {1.0}


def test_a_pyyaml_reading_floats_a_float32_ulp_larger_is_within_tolerance_explained_by_its_version(
    tmp_path_factory, venvs
):
    """lr 0.01 x (1 + 1e-7) is one float32 ULP above float32(0.01): every value moves by about 1e-7 of itself,
    within the compare tolerances, and the other bytes are explained by the version --with changed."""
    built = _float_scaling_pyyaml(tmp_path_factory.mktemp("wheels"), 1.0000001)
    done, report, root, _ = _check_with(tmp_path_factory, venvs, f"pyyaml @ {built.as_uri()}")
    assert done.returncode == EXIT_OK, done.stdout + done.stderr
    [change] = report["with"]["changes"]
    cpu = report["devices"]["cpu"]
    assert cpu["outcome"] == check_findings.WITHIN_TOLERANCE
    assert cpu["explained_by"] == [f"--with pyyaml: {change['locked']} -> {change['now']}"]
    assert 0 < cpu["largest_tolerance_ratio"] <= 1
    assert {"models/manual.json", "steps/manual.csv"} <= {d["file"] for d in cpu["byte_differences"]}
    assert all(found is None for found in cpu["first_divergence"].values())
    text = (root / "reports" / "check.md").read_text()
    assert f"The largest difference from the committed values is {cpu['largest_tolerance_ratio']:.3g} of its" in text


def test_a_version_pip_cannot_find_is_broken_with_pips_line(tmp_path_factory, venvs):
    done, report, root, env = _check_with(tmp_path_factory, venvs, "numpy==0.0.1")
    assert done.returncode == EXIT_BROKEN, done.stdout + done.stderr
    assert report["status"] == "broken"
    assert report["with"]["specs"] == ["numpy==0.0.1"]
    assert report["with"]["error"].startswith("ERROR: ")
    assert "numpy==0.0.1" in report["with"]["error"]
    assert "devices" not in report  # nothing ran
    assert f"The install failed: {report['with']['error']}" in (root / "reports" / "check.md").read_text()
    [(tags, _)] = _logged(env)
    assert (tags["check.with"], tags["check.status"]) == ("numpy==0.0.1", "broken")


def test_with_never_rewrites_the_committed_results(tmp_path_factory):
    root, env = make_clone(tmp_path_factory)
    done = run_cmd(["./pipeline", "check", "--update", "--with", "numpy"], root, env, check=False)
    assert done.returncode == EXIT_INPUT
    assert done.stderr.strip() == (
        "error: check: --with compares other versions with the committed results; it never rewrites them"
    )


def test_a_stale_lock_is_said_before_any_venv_is_built(tmp_path_factory):
    """Staleness is asked first: a venv takes minutes and GBs to build, and the verdict could mean nothing."""
    root, env = make_clone(tmp_path_factory)
    params = root / "params.yaml"
    params.write_text(params.read_text().replace("  epochs: 20", "  epochs: 21"))
    venvs = tmp_path_factory.mktemp("no-venvs")
    env["ADALINE_CHECK_VENVS"] = str(venvs)
    done = run_cmd(["./pipeline", "check", "--with", f"numpy=={OTHER_NUMPY}"], root, env, check=False)
    assert done.returncode == EXIT_STALE, done.stdout + done.stderr
    report = json.loads((root / "reports" / "check.json").read_text())
    assert (report["status"], report["with"], report["devices"]) == ("stale", {"specs": [f"numpy=={OTHER_NUMPY}"]}, {})
    assert (
        (root / "reports" / "check.md")
        .read_text()
        .startswith(f"# Reproducibility check with numpy=={OTHER_NUMPY}: stale")
    )
    assert list(venvs.iterdir()) == []

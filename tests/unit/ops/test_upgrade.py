"""check --with's venv: pip's own resolver re-resolves the named packages with the rest of the lock as
constraints, releases the pins that conflict with the new versions, takes torch from PyTorch's CPU index
where the lock takes its CPU build, names what changed, fails with pip's line, and builds a venv of exactly
what it resolved once per set of files. Offline: a local folder of tiny wheels is pip's only source."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from adaline_repro.ops import upgrade, versions
from adaline_repro.ops.versions import Change
from tests.wheels import wheel


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A repository whose one direct dependency, alpha 1.0, needs beta (locked at 1.0); the wheel folder
    also holds alpha 2.0 (which needs beta >= 2), beta 2.0 and 3.0, and gamma 1.0 (which needs beta < 2).
    pip reads no configuration and no index: the wheel folder is its only source."""
    wheels = tmp_path / "wheels"
    for version, needs in (("1.0", "beta"), ("2.0", "beta>=2")):
        wheel(wheels, "alpha", version, {"alpha/__init__.py": f"VERSION = {version!r}\n".encode()}, (needs,))
    for version in ("1.0", "2.0", "3.0"):
        wheel(wheels, "beta", version, {"beta/__init__.py": f"VERSION = {version!r}\n".encode()})
    root = tmp_path / "repo"
    root.mkdir()
    (root / "requirements.in").write_text("# the direct dependency\nalpha==1.0  # pinned, as ours are\n")
    (root / "requirements.lock").write_text(
        "# generated\nalpha==1.0 \\\n    --hash=sha256:00\n    # via -r requirements.in\n"
        'beta==1.0 ; python_version >= "3" \\\n    --hash=sha256:00\n    # via alpha\n'
        'beta==0.5 ; python_version < "3"\n'
    )
    (tmp_path / "empty-index").mkdir()
    for key, value in {"PIP_CONFIG_FILE": os.devnull, "PIP_FIND_LINKS": str(wheels),
                       "PIP_INDEX_URL": (tmp_path / "empty-index").as_uri(),
                       "ADALINE_CHECK_VENVS": str(tmp_path / "venvs")}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("ADALINE_TORCH", raising=False)
    return root


def test_a_new_version_the_lock_allows_changes_that_package_alone(repo):
    venv = upgrade.prepare(repo, ["beta==2.0"], print)
    assert venv.changes == (Change("beta", "1.0", "2.0"),)
    assert venv.released == ()
    assert _imported(venv.path) == {"alpha": "1.0", "beta": "2.0"}


def test_a_new_version_whose_requirements_exclude_a_pin_releases_it(repo):
    """alpha 2.0 needs beta >= 2: the lock's beta 1.0 cannot stay, and beta resolves anew to its newest."""
    venv = upgrade.prepare(repo, ["alpha"], print)
    assert venv.changes == (Change("alpha", "1.0", "2.0"), Change("beta", "1.0", "3.0"))
    assert venv.released == ("beta",)
    assert _imported(venv.path) == {"alpha": "2.0", "beta": "3.0"}


def test_a_direct_dependency_named_by_a_spec_keeps_its_extras(repo):
    """requirements.in's `alpha[fast]`: --with alpha==2.0 still asks for the extra's packages."""
    wheels = Path(os.environ["PIP_FIND_LINKS"])
    needs = ("beta>=2", "gamma ; extra == 'fast'")
    wheel(wheels, "alpha", "2.1", {"alpha/__init__.py": b"VERSION = '2.1'\n"}, needs, extras=("fast",))
    wheel(wheels, "gamma", "1.0", {"gamma/__init__.py": b""})
    (repo / "requirements.in").write_text("alpha[fast]==1.0\n")
    venv = upgrade.prepare(repo, ["alpha==2.1"], print)
    assert Change("gamma", None, "1.0") in venv.changes


def test_a_lock_pin_whose_own_requirements_exclude_the_new_version_is_released(repo):
    """The lock's gamma 1.0 needs beta < 2: --with beta==2.0 releases gamma, which resolves to its 2.0."""
    wheels = Path(os.environ["PIP_FIND_LINKS"])
    wheel(wheels, "gamma", "1.0", {"gamma/__init__.py": b""}, ("beta<2",))
    wheel(wheels, "gamma", "2.0", {"gamma/__init__.py": b""}, ("beta",))
    (repo / "requirements.in").write_text("alpha==1.0\ngamma==1.0\n")
    (repo / "requirements.lock").write_text("alpha==1.0\nbeta==1.0\ngamma==1.0\n")
    venv = upgrade.prepare(repo, ["beta==2.0"], print)
    assert venv.released == ("gamma",)
    assert venv.changes == (Change("beta", "1.0", "2.0"), Change("gamma", "1.0", "2.0"))


def test_torch_comes_from_pytorchs_cpu_index_where_the_lock_takes_its_cpu_build(repo, tmp_path, monkeypatch):
    """A lock pinning torch 1.0+cpu: --with torch takes the newest CPU build from ADALINE_TORCH_INDEX (2.0+cpu
    over the plain 2.0 pip's own sources hold), and says which index; an index that does not answer leaves
    pip's own sources; ADALINE_TORCH=cuda asks for the plain build, as ./pipeline's set-up does."""
    wheels = Path(os.environ["PIP_FIND_LINKS"])
    for version in ("1.0", "2.0"):
        wheel(wheels, "torch", version, {"torch/__init__.py": f"VERSION = {version!r}\n".encode()})
    index = tmp_path / "cpu-index"
    for version in ("1.0+cpu", "2.0+cpu"):
        wheel(tmp_path / "cpu-wheels", "torch", version, {"torch/__init__.py": b""})
        (index / "torch").mkdir(parents=True, exist_ok=True)
    links = "".join(f'<a href="{w.as_uri()}">{w.name}</a>\n' for w in sorted((tmp_path / "cpu-wheels").glob("*.whl")))
    (index / "torch" / "index.html").write_text(f"<html><body>{links}</body></html>\n")
    (repo / "requirements.in").write_text("alpha==1.0\ntorch==1.0\n")
    (repo / "requirements.lock").write_text("alpha==1.0\nbeta==1.0\ntorch==1.0+cpu\n")

    monkeypatch.setenv("ADALINE_TORCH_INDEX", index.as_uri())
    venv = upgrade.prepare(repo, ["torch"], print)
    assert (venv.changes, venv.torch_index) == ((Change("torch", "1.0+cpu", "2.0+cpu"),), index.as_uri())

    monkeypatch.setenv("ADALINE_TORCH_INDEX", (tmp_path / "no-such-index").as_uri())
    said = []
    venv = upgrade.prepare(repo, ["torch"], said.append)
    assert (venv.changes, venv.torch_index) == ((Change("torch", "1.0+cpu", "2.0"),), None)
    assert any("does not answer" in line for line in said)

    monkeypatch.setenv("ADALINE_TORCH_INDEX", index.as_uri())
    monkeypatch.setenv("ADALINE_TORCH", "cuda")
    assert versions.locked(repo)["torch"] == "1.0"
    venv = upgrade.prepare(repo, ["beta==2.0"], print)
    assert (venv.changes, venv.torch_index) == ((Change("beta", "1.0", "2.0"),), None)
    assert _imported(venv.path, ("torch",)) == {"torch": "1.0"}


def test_what_pip_cannot_resolve_fails_with_pips_error_line(repo):
    with pytest.raises(versions.InstallFailed) as failed:
        upgrade.prepare(repo, ["beta==9.9"], print)
    assert failed.value.line.startswith("ERROR: ")
    assert "beta==9.9" in failed.value.line


def test_the_venv_is_built_once_per_set_of_files_and_kept_apart_from_others(repo):
    first = upgrade.prepare(repo, ["beta==2.0"], print)
    again = upgrade.prepare(repo, ["beta == 2.0"], print)  # another spelling, the same files
    other = upgrade.prepare(repo, ["beta==3.0"], print)
    assert (first.reused, again.reused, other.reused) == (False, True, False)
    assert again.path == first.path != other.path
    assert (first.path / upgrade.MARKER).is_file()
    assert _imported(first.path) == {"alpha": "1.0", "beta": "2.0"}  # the other build left it alone


def test_a_build_that_stopped_before_its_marker_is_built_again(repo):
    first = upgrade.prepare(repo, ["beta==2.0"], print)
    (first.path / upgrade.MARKER).unlink()
    (first.path / "half-built").write_text("")
    again = upgrade.prepare(repo, ["beta==2.0"], print)
    assert again.reused is False
    assert not (again.path / "half-built").exists()


def _imported(venv, names=("alpha", "beta")):
    """The VERSION each module says it is, in that venv."""
    code = f"import {', '.join(names)}; print({', '.join(f'{n}.VERSION' for n in names)})"
    out = subprocess.run([venv / "bin" / "python", "-c", code], capture_output=True, text=True, check=True).stdout
    return dict(zip(names, out.split(), strict=True))

"""check --with's venv: pip's own resolver re-resolves the named packages with the rest of the lock as
constraints, releases the pins a new version excludes, names what changed, fails with pip's line, and
builds a venv of exactly what it resolved once per set of files. Offline: a local folder of tiny wheels is
pip's only source."""

from __future__ import annotations

import subprocess

import pytest

from adaline_repro.core.errors import InputError
from adaline_repro.ops import upgrade
from adaline_repro.ops.upgrade import Change
from tests.wheels import wheel


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A repository whose one direct dependency, alpha 1.0, needs beta (locked at 1.0); the wheel folder
    also holds alpha 2.0 (which needs beta >= 2), beta 2.0 and 3.0."""
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
    (tmp_path / "no-constraints.txt").write_text("")
    for key, value in {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels),
                       "PIP_CONSTRAINT": str(tmp_path / "no-constraints.txt"),
                       "ADALINE_CHECK_VENVS": str(tmp_path / "venvs")}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    return root


def test_specs_are_pip_requirements_a_bare_name_or_latest_for_every_direct_dependency(repo):
    assert [str(r) for r in upgrade.requested(["alpha==2.0", "beta"], repo)] == ["alpha==2.0", "beta"]
    assert [str(r) for r in upgrade.requested(["latest"], repo)] == ["alpha"]
    assert [str(r) for r in upgrade.requested(["latest", "alpha>=2"], repo)] == ["alpha>=2"]  # a spec over latest


@pytest.mark.parametrize(
    ("specs", "message"),
    [(["torch=2.15"], "'torch=2.15' is not a pip requirement"), (["beta==2.0", "beta==3.0"], "beta is named twice")],
)
def test_a_spec_pip_cannot_read_or_a_package_named_twice_is_refused(repo, specs, message):
    with pytest.raises(InputError, match=message):
        upgrade.requested(specs, repo)


def test_the_lock_pins_that_apply_to_this_machine(repo):
    assert upgrade.locked(repo) == {"alpha": "1.0", "beta": "1.0"}


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


def test_what_pip_cannot_resolve_fails_with_pips_error_line(repo):
    with pytest.raises(upgrade.InstallFailed) as failed:
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


def _imported(venv):
    code = "import alpha, beta; print(alpha.VERSION, beta.VERSION)"
    out = subprocess.run([venv / "bin" / "python", "-c", code], capture_output=True, text=True, check=True).stdout
    return dict(zip(("alpha", "beta"), out.split(), strict=True))

"""The specs check --with reads: pip requirements, bare names, `latest` for every direct dependency (a spec
naming one wins, keeping requirements.in's extras); a spec pip cannot read, a package named twice or a spec
for another machine refused; and the lock's pins for this machine, markers evaluated."""

from __future__ import annotations

import pytest

from adaline_repro.core.errors import InputError
from adaline_repro.ops import versions

# A lock as ./pipeline lock writes one: a header, hashes and "via" comments under each pin, markers.
LOCK = [
    "# generated",
    "alpha==1.0 \\",
    "    --hash=sha256:00",
    "    # via -r requirements.in",
    'beta==1.0 ; python_version >= "3" \\',
    "    --hash=sha256:00",
    'beta==0.5 ; python_version < "3"',
    "torch==2.13.0+cpu",
]


@pytest.fixture
def repo(tmp_path, monkeypatch):
    root = tmp_path / "repo"
    root.mkdir()
    (root / "requirements.in").write_text("# the direct dependency\nalpha[fast]==1.0  # pinned, as ours are\n")
    (root / "requirements.lock").write_text("\n".join(LOCK) + "\n")
    monkeypatch.delenv("ADALINE_TORCH", raising=False)
    return root


def test_specs_are_pip_requirements_a_bare_name_or_latest_for_every_direct_dependency(repo):
    assert [str(r) for r in versions.requested(["alpha==2.0", "beta"], repo)] == ["alpha[fast]==2.0", "beta"]
    assert [str(r) for r in versions.requested(["latest"], repo)] == ["alpha[fast]"]
    assert [str(r) for r in versions.requested(["latest", "alpha>=2"], repo)] == ["alpha[fast]>=2"]  # a spec wins


@pytest.mark.parametrize(
    ("specs", "message"),
    [(["torch=2.15"], "'torch=2.15' is not a pip requirement"), (["beta==2.0", "beta==3.0"], "beta is named twice")],
)
def test_a_spec_pip_cannot_read_or_a_package_named_twice_is_refused(repo, specs, message):
    with pytest.raises(InputError, match=message):
        versions.requested(specs, repo)


def test_the_lock_pins_that_apply_to_this_machine(repo):
    assert versions.locked(repo) == {"alpha": "1.0", "beta": "1.0", "torch": "2.13.0+cpu"}


def test_with_pypis_torch_build_the_locked_torch_is_its_version_without_the_cpu_label(repo, monkeypatch):
    monkeypatch.setenv("ADALINE_TORCH", "cuda")
    assert versions.locked(repo)["torch"] == "2.13.0"


def test_a_spec_whose_marker_excludes_this_machine_is_refused(repo):
    with pytest.raises(InputError, match="its marker excludes this machine"):
        versions.requested(['beta==2.0 ; python_version < "3"'], repo)

"""The snapshot: every output dvc.lock names and dvc.lock are put back exactly, from another
process too (the manifest), and a file that cannot be put back is reported, missing, never half-written."""

from __future__ import annotations

import shutil

import pytest

from adaline_repro.repro import snapshot as copies


@pytest.fixture
def repo(checkout):
    return checkout


def _state(root):
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".dvc" not in p.parts
    }


def _run_that_fails(root):
    """What a stopped run leaves: dvc.lock rewritten, one output changed, one gone, one new, a new file in
    an output folder."""
    (root / "dvc.lock").write_text((root / "dvc.lock").read_text().replace("md5: 0\n", "md5: 1\n"))
    (root / "models/manual.json").write_text("after\n")
    (root / "metrics/module.json").unlink()
    (root / "metrics/autograd.json").write_text("{}\n")
    (root / "steps").mkdir()
    (root / "steps/manual.csv").write_text("step\n")


def test_restore_puts_every_output_and_dvc_lock_back_exactly(repo):
    before = _state(repo)
    snapshot = copies.take(repo)
    assert snapshot.present[0] == "dvc.lock"
    assert snapshot.absent == ("steps/manual.csv",)
    _run_that_fails(repo)
    assert copies.restore(snapshot) == []
    assert _state(repo) == before
    assert not snapshot.folder.exists()
    assert list(repo.rglob("*.tmp")) == []


def test_another_process_restores_from_the_manifest_and_an_unfinished_snapshot_is_none(repo):
    before = _state(repo)
    taken = copies.take(repo)
    _run_that_fails(repo)
    loaded = copies.load(repo, taken.folder)
    assert loaded == taken
    assert copies.restore(loaded) == []
    assert _state(repo) == before
    unfinished = copies.take(repo)
    (unfinished.folder / "manifest.json").unlink()
    assert copies.load(repo, unfinished.folder) is None
    assert copies.strays(repo) == [unfinished.folder]


def test_what_cannot_be_put_back_is_reported_missing_and_the_copies_are_kept(repo):
    before = _state(repo)
    snapshot = copies.take(repo)
    _run_that_fails(repo)
    shutil.rmtree(repo / "models")
    (repo / "models").write_text("a file where the folder was\n")  # no write can go below it, not even root's
    failed = copies.restore(snapshot)
    assert failed == ["models/manual.json (File exists)"]
    after = _state(repo)
    assert "models/manual.json" not in after
    assert {k: v for k, v in after.items() if k != "models"} == {
        k: v for k, v in before.items() if k != "models/manual.json"
    }
    assert list(repo.rglob("*.tmp")) == []
    assert copies.load(repo, snapshot.folder) == snapshot  # kept for the next run

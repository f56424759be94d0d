"""Locations: stages in DVC's temporary copies still find the repository's store."""

from __future__ import annotations

from pathlib import Path

from adaline_repro.workspace import embedded_db, repository_root, tracking_uri


def test_temporary_experiment_copy_maps_to_the_repository():
    assert repository_root(Path("/home/u/proj/.dvc/tmp/exps/tmp3k2j1")) == Path("/home/u/proj")
    assert repository_root(Path("/home/u/proj")) == Path("/home/u/proj")


def test_dvc_root_is_the_workspace(monkeypatch, tmp_path):
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / ".dvc" / "tmp" / "exps" / "tmpabc"))
    assert repository_root() == tmp_path.resolve()


def test_embedded_store_is_absolute_at_the_repository_root(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = tracking_uri(tmp_path)
    assert uri == f"sqlite:///{tmp_path}/mlflow.db"
    assert embedded_db(uri) == tmp_path / "mlflow.db"


def test_environment_tracking_uri_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking_uri(tmp_path) == "http://127.0.0.1:5000"
    assert embedded_db("http://127.0.0.1:5000") is None

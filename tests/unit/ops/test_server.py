"""./pipeline server's options: where artifacts go."""

from __future__ import annotations

from pathlib import Path

from adaline_repro.ops import server as server_module


def _options(tmp_path: Path, artifacts: str | None) -> server_module.Options:
    return server_module.Options(tmp_path, None, artifacts, "127.0.0.1", 5000, 2)


def test_artifact_destination_passes_store_uris_and_anchors_folders(tmp_path, monkeypatch):
    """A store URI goes to MLflow as given; a folder becomes absolute, since the server's working
    directory is not the user's."""
    monkeypatch.chdir(tmp_path)
    assert server_module.artifact_destination(_options(tmp_path, "s3://bucket/runs")) == "s3://bucket/runs"
    assert server_module.artifact_destination(_options(tmp_path, "art")) == str(tmp_path / "art")
    assert server_module.artifact_destination(_options(tmp_path, None)) == str(tmp_path / "artifacts")
    assert (tmp_path / "art").is_dir()

"""`./pipeline repro`'s shortcut: it answers "up to date" only while every file DVC decides on is untouched."""

from __future__ import annotations

import os

import pytest

from adaline_repro.repro import uptodate

LOCK = """schema: '2.0'
stages:
  train:
    cmd: ./pipeline train
    deps:
    - path: data/train.csv
      hash: md5
      md5: 0
    outs:
    - path: models
      hash: md5
      md5: 0.dir
"""


@pytest.fixture
def repo(tmp_path):
    for name, text in {
        "dvc.yaml": "stages: {}\n",
        "dvc.lock": LOCK,
        "params.yaml": "train: {lr: 0.01}\n",
        "data/train.csv": "x,y\n1,2\n",
        "models/manual.json": "{}\n",
        ".venv/.requirements.sha256": "abc 3.11.7\n",
    }.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    uptodate.record(tmp_path, tmp_path / ".venv/.requirements.sha256")
    return tmp_path


def _unchanged(repo) -> bool:
    return uptodate.unchanged(repo, repo / ".venv/.requirements.sha256")


def test_untouched_files_are_up_to_date(repo):
    assert _unchanged(repo)


@pytest.mark.parametrize(
    "change",
    [
        lambda r: (r / "params.yaml").write_text("train: {lr: 0.02}\n"),  # same size, new content
        lambda r: os.utime(r / "data/train.csv", ns=(1, 1)),  # a dependency touched
        lambda r: (r / "models/manual.json").unlink(),  # an output deleted
        lambda r: (r / "models/module.json").write_text("{}\n"),  # a file appears in an output folder
        lambda r: (r / ".venv/.requirements.sha256").write_text("def 3.11.7\n"),  # other packages
        lambda r: (r / "dvc.yaml").write_text("stages: {a: {cmd: x}}\n"),
    ],
)
def test_any_change_sends_repro_to_dvc(repo, change):
    change(repo)
    assert not _unchanged(repo)


def test_no_record_means_no_shortcut(repo):
    uptodate.forget(repo)
    assert not _unchanged(repo)

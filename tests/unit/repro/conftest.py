"""A checkout as the repro wrapper sees it: a dvc.lock naming a file, a folder and a missing output."""

from __future__ import annotations

import pytest

LOCK = """schema: '2.0'
stages:
  train:
    cmd: ./pipeline train
    outs:
    - path: models/manual.json
      hash: md5
      md5: 0
    - path: metrics
      hash: md5
      md5: 0.dir
    - path: steps/manual.csv
      hash: md5
      md5: 0
"""


@pytest.fixture
def checkout(tmp_path):
    for name, text in {
        "dvc.lock": LOCK,
        "models/manual.json": "before\n",
        "metrics/manual.json": '{"acc": 0.9}\n',
        "metrics/module.json": '{"acc": 0.8}\n',
    }.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    (tmp_path / ".dvc" / "tmp").mkdir(parents=True)
    return tmp_path

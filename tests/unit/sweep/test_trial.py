"""A trial is the pipeline's own stages: at the committed params it writes the bytes dvc.lock records, file
for file, and a configuration the stages refuse is its record's error, not an exception."""

from __future__ import annotations

import hashlib
import json

import pytest

from adaline_repro.core.checkout import pipeline_paths
from adaline_repro.core.files import safe_yaml
from adaline_repro.dvc_support.overrides import Overrides
from adaline_repro.sweep import trial
from adaline_repro.sweep.grid import Trial
from adaline_repro.sweep.trial import TrialRecord
from tests.conftest import PATHS, REPO


@pytest.fixture(scope="module")
def applied():
    return Overrides((REPO / "params.yaml").read_text())


def test_the_committed_params_give_the_committed_bytes_of_every_stage_output(applied):
    # dvc.lock's md5 where it records the file (data/ is a DVC output git ignores: a clean clone has none);
    # the files inside metrics/ and predictions/ (folder outputs) are committed to git
    lock = safe_yaml((REPO / "dvc.lock").read_text())
    locked = {out["path"]: out["md5"] for stage in lock["stages"].values() for out in stage.get("outs", [])}
    lr = applied.base["train"]["lr"]
    record = trial.execute(Trial((f"train.lr={lr}",)), applied, pipeline_paths(REPO))
    assert record.error is None
    names = trial.outputs(PATHS, tuple(applied.base["train"]["backends"]))
    assert sorted(record.files) == names
    for name in names:
        expected = locked.get(name) or hashlib.md5((REPO / name).read_bytes(), usedforsecurity=False).hexdigest()
        assert record.files[name] == expected, name
    assert record.report.passed
    assert 0 < record.tolerance_ratio <= 1
    written = json.dumps(record.to_json(), sort_keys=True)  # what the journal holds, and what it reads back
    assert json.dumps(TrialRecord.from_json(json.loads(written)).to_json(), sort_keys=True) == written


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        (("train.lr=100",), "manual: diverged at epoch 2 (train_mse=inf)"),
        (("train.batch_size=71",), "train.batch_size=71 exceeds the 70 training rows"),
    ],
)
def test_a_configuration_the_stages_refuse_is_the_trial_s_error(overrides, error, applied):
    record = trial.execute(Trial(overrides), applied, pipeline_paths(REPO))
    assert record.error == error
    assert record.files == {}
    assert record.params["train"][overrides[0].split("=")[0].split(".")[1]] == float(overrides[0].split("=")[1])

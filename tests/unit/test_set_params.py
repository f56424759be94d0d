"""`-S` values are checked before DVC runs: every combination of an `exp run` line (queue grids included),
applied as DVC writes it, against params.yaml's rules; other commands and other files are left to DVC."""

from __future__ import annotations

import pytest

from adaline_repro import set_params
from tests.conftest import REPO


@pytest.mark.parametrize(
    "line",
    [
        ["exp", "run", "-S", "train.lr=-1"],
        ["exp", "run", "--queue", "-S", "train.lr=0.01,-1"],
        ["exp", "run", "--temp", "--set-param", "params.yaml:train.lr=-1"],
        ["experiments", "run", "-S=train.lr=-1"],
    ],
)
def test_a_refused_value_is_one_line_naming_it(line):
    with pytest.raises(set_params.SetParamError) as raised:
        set_params.check(line, REPO)
    assert str(raised.value) == (
        "-S train.lr=-1: params.yaml: train.lr: must be greater than 0 (got -1.0); nothing was run or changed"
    )


def test_every_combination_of_a_queued_grid_is_checked():
    assert set_params.check(["exp", "run", "--queue", "-S", "train.lr=0.01,0.1", "-S", "train.seed=1,2,3"], REPO) == 6


def test_dvc_s_own_refusals_come_first_too():
    with pytest.raises(set_params.SetParamError, match=r"^-S train\.nosuch=1: "):
        set_params.check(["exp", "run", "-S", "train.nosuch=1"], REPO)


@pytest.mark.parametrize(
    "line",
    [["exp", "show"], ["repro"], ["exp", "run"], ["exp", "run", "-S", "other.yaml:x=-1"], ["exp", "run", "--nosuch"]],
)
def test_other_lines_are_dvc_s_to_judge(line):
    assert set_params.check(line, REPO) == 0

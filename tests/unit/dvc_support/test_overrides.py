"""`-S` values: a point of a grid is params.yaml as DVC's own apply_overrides leaves it, whether its values
are combined or applied together; and they are checked before DVC runs: every combination of an `exp run`
line (queue grids included) against params.yaml's rules; other commands and other files are left to DVC."""

from __future__ import annotations

import pytest

from adaline_repro.core.files import safe_yaml
from adaline_repro.dvc_support import overrides
from tests.conftest import REPO

POINTS = [
    ["train.lr=0.05", "train.seed=7", "prepare.seed=3"],
    ["train.backends=[manual,module]", "evaluate.threshold=0.25"],
    ["+train.extra=1", "~tracking"],
    ["train.lr=0.05", "train.lr=0.1"],  # one key twice: applied together, as DVC does
    ["train={epochs: 3}", "train.lr=0.5"],  # a key and one inside it: applied together
]


@pytest.mark.parametrize("point", POINTS, ids=[" ".join(p) for p in POINTS])
def test_a_point_is_params_yaml_as_dvc_writes_it(tmp_path, point):
    """Each value's effect combined (or the point applied whole when its values overlap) gives what DVC's own
    apply_overrides leaves in params.yaml for the whole point."""
    from dvc.utils.hydra import apply_overrides

    text = (REPO / "params.yaml").read_text()
    path = tmp_path / "params.yaml"
    path.write_text(text)
    apply_overrides(path, point)
    assert overrides.Overrides(text).params(point) == safe_yaml(path.read_text())


def test_a_grid_is_dvc_s_expansion_in_its_order():
    assert overrides.grid(["train.lr=0.01,0.1", "train.seed=range(1,3)"]) == [
        ["train.lr=0.01", "train.seed=1"],
        ["train.lr=0.01", "train.seed=2"],
        ["train.lr=0.1", "train.seed=1"],
        ["train.lr=0.1", "train.seed=2"],
    ]


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
    with pytest.raises(overrides.SetParamError) as raised:
        overrides.check(line, REPO)
    assert str(raised.value) == (
        "-S train.lr=-1: params.yaml: train.lr: must be greater than 0 (got -1.0); nothing was run or changed"
    )


def test_every_combination_of_a_queued_grid_is_checked():
    assert overrides.check(["exp", "run", "--queue", "-S", "train.lr=0.01,0.1", "-S", "train.seed=1,2,3"], REPO) == 6


def test_dvc_s_own_refusals_come_first_too():
    with pytest.raises(overrides.SetParamError, match=r"^-S train\.nosuch=1: "):
        overrides.check(["exp", "run", "-S", "train.nosuch=1"], REPO)


@pytest.mark.parametrize(
    "line",
    [["exp", "show"], ["repro"], ["exp", "run"], ["exp", "run", "-S", "other.yaml:x=-1"], ["exp", "run", "--nosuch"]],
)
def test_other_lines_are_dvc_s_to_judge(line):
    assert overrides.check(line, REPO) == 0

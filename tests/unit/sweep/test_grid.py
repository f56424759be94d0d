"""The sweep's grid: DVC's `-S` grammar and order, each value applied as `dvc exp run -S` writes it into
params.yaml, and every grid that cannot run refused in one line before any work."""

from __future__ import annotations

import shutil

import pytest
from dvc.utils.hydra import apply_overrides as dvc_apply_overrides

from adaline_repro.core.params import load_params
from adaline_repro.dvc_support.overrides import Overrides
from adaline_repro.sweep.grid import GridError, Trial, default_overrides, trial_params, trials
from tests.conftest import REPO


@pytest.fixture(scope="module")
def raw():
    return Overrides((REPO / "params.yaml").read_text())


def test_comma_lists_and_ranges_expand_in_dvc_s_order(raw):
    grid = trials(raw, ["train.lr=0.1,0.2", "prepare.seed=range(1,4,2)"])
    assert [t.overrides for t in grid] == [
        ("train.lr=0.1", "prepare.seed=1"),
        ("train.lr=0.1", "prepare.seed=3"),
        ("train.lr=0.2", "prepare.seed=1"),
        ("train.lr=0.2", "prepare.seed=3"),
    ]


@pytest.mark.parametrize(
    "overrides",
    [
        ["train.lr=0.05"],
        ["train.lr=1e-3", "train.batch_size=7"],
        ["train.backends=[manual,module]"],
        ["prepare.features=[petal_width,sepal_length]", "evaluate.threshold=0.4"],
        ["train.dtype=float64", "train.device=auto", "prepare.seed=0"],
    ],
)
def test_a_trial_s_params_are_what_dvc_exp_run_writes_into_params_yaml(overrides, raw, tmp_path):
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    dvc_apply_overrides(tmp_path / "params.yaml", overrides)  # DVC's own code, on the file
    assert trial_params(raw, overrides) == load_params(tmp_path / "params.yaml")


def test_the_committed_default_sweep_has_a_thousand_trials_over_both_seeds_lr_and_minibatch(raw):
    grid = trials(raw, default_overrides(REPO))
    keys = {o.split("=")[0] for t in grid for o in t.overrides}
    assert len(grid) >= 1000
    assert keys == {"prepare.seed", "train.seed", "train.lr", "train.batch_size"}
    assert len({t.id for t in grid}) == len(grid)


def test_a_trial_s_id_ignores_the_order_of_its_values_and_its_command_reproduces_it():
    a, b = Trial(("train.lr=0.1", "prepare.seed=2")), Trial(("prepare.seed=2", "train.lr=0.1"))
    assert a.id == b.id
    assert a.id != Trial(("train.lr=0.1", "prepare.seed=3")).id
    assert a.command == "./pipeline dvc exp run -S train.lr=0.1 -S prepare.seed=2"
    assert Trial(("train.backends=[manual, module]",)).command.endswith("-S 'train.backends=[manual, module]'")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["train.lrr=0.1"], "-S train.lrr=0.1: Could not override 'train.lrr'."),
        (["fetch.source=url"], "-S fetch.source=url: only prepare.*, train.* and evaluate.* keys can be swept"),
        (["train.lr=range(3,3)"], "-S train.lr=range(3,3): the grid is empty (an empty range or list?)"),
        (["train.lr=0.1,-1"], "-S train.lr=-1: params.yaml: train.lr: must be greater than 0 (got -1.0)"),
        (["train.device=tpu"], "-S train.device=tpu: params.yaml: train.device: must be one of 'cpu', 'cuda', 'auto'"),
        (["train.lr=[0.1,"], "-S train.lr=[0.1,: no viable alternative at input '[0.1,'"),
        (["train.lr=glob(*)"], "-S train.lr=glob(*): Glob override 'train.lr=glob(*)' is not supported."),
        (["train.lr=0.1,0.1"], "-S train.lr=0.1,0.1: the grid holds a trial twice (a value listed twice?)"),
    ],
)
def test_a_grid_that_cannot_run_is_one_line(overrides, message, raw):
    with pytest.raises(GridError) as caught:
        trials(raw, overrides)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_dvc_s_struct_mode_refuses_a_new_key_unless_it_is_added(raw):
    with pytest.raises(GridError, match=r"Could not override 'train\.momentum'"):
        trial_params(raw, ["train.momentum=0.9"])
    assert raw.params(["+train.momentum=0.9"])["train"]["momentum"] == 0.9

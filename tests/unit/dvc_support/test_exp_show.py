"""`./pipeline dvc exp show`'s default view: the options it adds, and that the user's own choice wins."""

from __future__ import annotations

import re

from adaline_repro.dvc_support import exp_show
from tests.conftest import PATHS, REPO


def _option(args: list[str], name: str) -> re.Pattern:
    return re.compile(args[args.index(name) + 1])


def test_the_default_view_keeps_the_verdict_and_the_lecture_s_knobs_and_drops_deps(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    args = exp_show.arguments(["exp", "show", "--no-pager"], REPO)
    assert args[:3] == ["exp", "show", "--no-pager"]
    assert "--only-changed" in args
    keep, drop = _option(args, "--keep"), _option(args, "--drop")
    for column in ("Experiment", "agree", "tol_used", "train_acc", "test_acc", "final_mse", "train.lr",
                   "train.batch_size"):  # fmt: skip
        assert keep.match(column), column
    for column in ("train.epochs", "train_accuracy", "metrics/manual.json:train_accuracy"):
        assert not keep.match(column), column
    for column in ("Created", "src/adaline_repro/cli.py", "data/prepared/train.csv", "largest_diff",
                   *PATHS.result_folders):  # fmt: skip
        assert drop.match(column), column
    assert not drop.match("train.seed")  # a param an experiment changed stays (--only-changed)


def test_the_user_s_columns_or_all_of_them_are_left_alone(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    mine = ["exp", "show", "--keep", "train.lr"]
    assert exp_show.arguments(mine, REPO) == mine
    assert exp_show.arguments(["exp", "show", "--csv"], REPO) == ["exp", "show", "--csv"]
    assert exp_show.arguments(["exp", "show", exp_show.ALL_COLUMNS], REPO) == ["exp", "show"]

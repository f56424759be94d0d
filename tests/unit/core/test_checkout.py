"""Where things are: dvc.yaml is the one home of the pipeline's paths (its `paths` are what the stage commands
use), and a stage in one of DVC's temporary copies still finds the repository."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from adaline_repro.core.checkout import pipeline_paths, repository_root
from tests.conftest import REPO


def test_every_stage_command_takes_its_paths_from_dvc_yaml():
    """No stage command, dependency or output spells a data or result path itself: each is `${paths.*}`."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    paths = dataclasses.asdict(pipeline_paths(REPO))
    for name, stage in stages.items():
        text = yaml.safe_dump({k: stage.get(k) for k in ("cmd", "deps", "outs", "plots", "metrics")})
        for value in paths.values():
            assert f" {value}" not in text.replace("${paths.", " ${paths."), (name, value)


def test_the_results_layout_names_one_file_per_backend_in_each_folder():
    results = pipeline_paths(REPO).results(REPO)
    assert results.model("manual") == REPO / "models" / "manual.json"
    assert results.curve("autograd") == REPO / "plots" / "loss" / "autograd.csv"
    assert results.prediction("module") == REPO / "predictions" / "module.csv"
    assert results.metric("module") == REPO / "metrics" / "module.json"


def test_temporary_experiment_copy_maps_to_the_repository():
    assert repository_root(Path("/home/u/proj/.dvc/tmp/exps/tmp3k2j1")) == Path("/home/u/proj")
    assert repository_root(Path("/home/u/proj")) == Path("/home/u/proj")


def test_dvc_root_is_the_workspace(monkeypatch, tmp_path):
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / ".dvc" / "tmp" / "exps" / "tmpabc"))
    assert repository_root() == tmp_path.resolve()

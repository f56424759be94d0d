"""The default DVC remote: one clone pushes, a teammate's fresh clone pulls and trains nothing."""

from __future__ import annotations

import configparser

from tests.conftest import make_clone, run_cmd


def _default_remote(root) -> str:
    """The default remote's URL as committed in .dvc/config (resolved by DVC relative to .dvc/)."""
    config = configparser.ConfigParser()
    config.read(root / ".dvc" / "config")
    name = config["core"]["remote"]
    return config[f"'remote \"{name}\"'"]["url"]


def test_a_pulled_clone_reproduces_without_training(tmp_path_factory):
    mine, env = make_clone(tmp_path_factory)
    teammate, teammate_env = make_clone(tmp_path_factory)
    remote = (mine / ".dvc" / _default_remote(mine)).resolve()
    # Both clones sit side by side, as two clones of one project do: they share the default remote.
    assert remote == (teammate / ".dvc" / _default_remote(teammate)).resolve()
    assert remote == mine.parent / "adaline-repro-dvc-remote"
    assert not remote.exists()
    run_cmd(["./pipeline", "repro"], mine, env)
    pushed = run_cmd(["./pipeline", "dvc", "push"], mine, env)
    assert "4 files pushed" in pushed.stdout, pushed.stdout

    pulled = run_cmd(["./pipeline", "dvc", "pull"], teammate, teammate_env)
    assert "4 files" in pulled.stdout, pulled.stdout
    for data in ("data/raw/iris.csv", "data/prepared/train.csv", "data/prepared/test.csv"):
        assert (teammate / data).read_bytes() == (mine / data).read_bytes()
    done = run_cmd(["./pipeline", "repro"], teammate, teammate_env)
    ran = [line.split("'")[1] for line in done.stdout.splitlines() if line.startswith("Running stage")]
    assert ran == ["track"], done.stdout  # only the new clone's own MLflow store is filled
    assert (teammate / "dvc.lock").read_bytes() == (mine / "dvc.lock").read_bytes()

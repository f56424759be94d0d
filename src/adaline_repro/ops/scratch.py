"""A scratch copy of the checkout: the files a fresh clone holds, committed in a repository of their own, and
the environment a run there gets (which venv, a throw-away store). `./pipeline check` and `sweep --verify`
run in one, so the user's outputs and store are left alone."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

_IDENTITY = {"user.name": "adaline-repro check", "user.email": "check@localhost"}


def tracked_files(repo: Path) -> list[str]:
    """Files git tracks or would track (untracked but not ignored), relative to the repository."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=repo, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return [name for name in out.split("\0") if name and (repo / name).is_file()]


def copy_worktree(repo: Path, dest: Path) -> Path:
    """Copy the working tree's files (no .venv, no DVC cache, no store) and commit them in a new repository."""
    for name in tracked_files(repo):
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / name, dest / name)
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_SYSTEM": os.devnull}
    git = ["git", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q"], cwd=dest, check=True, env=env)
    for key, value in _IDENTITY.items():  # dvc exp commits with the repository's identity
        subprocess.run(["git", "config", key, value], cwd=dest, check=True, env=env)
    subprocess.run(["git", "add", "-A"], cwd=dest, check=True, env=env)
    subprocess.run(["git", "commit", "-q", "--no-verify", "-m", "scratch copy"], cwd=dest, check=True, env=env)
    return dest


def scratch_env(scratch: Path, repo: Path, log_to_store: bool, venv: Path | None = None) -> dict[str, str]:
    """The scratch copy's environment: this venv (or `venv`, check --with's), and a throw-away store."""
    from adaline_repro.core.tracking_uri import tracking_uri

    env = {**os.environ, "ADALINE_VENV": str(venv) if venv else os.environ.get("ADALINE_VENV", str(repo / ".venv"))}
    env.pop("DVC_ROOT", None)
    env["MLFLOW_TRACKING_URI"] = tracking_uri(repo) if log_to_store else f"sqlite:///{scratch}/mlflow.db"
    return env


def new_scratch(repo: Path) -> Path:
    return copy_worktree(repo, Path(tempfile.mkdtemp(prefix="adaline-check-")))

"""What every benchmark scenario uses: a scratch copy of the repository with its own store (Workspace), runs
interleaved A B A B (interleave), the repository at another revision (baseline_workspace), and the median
and range of timings and of per-pair ratios (summary, ratio)."""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from adaline_repro.ops.scratch import copy_worktree

REPO = Path(__file__).resolve().parents[1]


def summary(values: list[float]) -> dict[str, float]:
    """Median and range of a list of timings."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def ratio(a: list[float], b: list[float]) -> dict[str, float]:
    """Per-pair ratios a_i / b_i of interleaved runs, summarized."""
    return summary([x / y for x, y in zip(a, b, strict=True)])


class Workspace:
    """A scratch copy with the repository's venv, its own store, data in place."""

    def __init__(self, source: Path = REPO) -> None:
        self.root = copy_worktree(source, Path(tempfile.mkdtemp(prefix="adaline-bench-")))
        venv = Path(os.environ.get("ADALINE_VENV", REPO / ".venv"))
        self.env = {
            **os.environ,
            "ADALINE_VENV": str(venv),
            "PATH": f"{venv / 'bin'}:{os.environ['PATH']}",
            "MLFLOW_TRACKING_URI": f"sqlite:///{self.root}/mlflow.db",
            "DVC_NO_ANALYTICS": "1",
            "MLFLOW_DISABLE_TELEMETRY": "true",
        }
        self.env.pop("DVC_ROOT", None)
        self.run(["./pipeline", "repro"])  # store created, data fetched, everything up to date

    def run(self, cmd: list[str], dvc_root: bool = False, env: dict | None = None) -> float:
        """Seconds `cmd` took in the workspace; with dvc_root, in the environment DVC gives stage commands."""
        env = env or self.env
        env = {**env, "DVC_ROOT": str(self.root)} if dvc_root else env
        start = time.perf_counter()
        done = subprocess.run(cmd, cwd=self.root, env=env, capture_output=True, text=True)
        took = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"{cmd} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        return took

    def set_param(self, key: str, value: str) -> None:
        """Rewrite one `key: value` line of params.yaml (keys are unique in this file)."""
        path = self.root / "params.yaml"
        text, count = re.subn(rf"(?m)^(\s+{key}:\s*)\S+", rf"\g<1>{value}", path.read_text())
        assert count == 1, key
        path.write_text(text)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def interleave(reps: int, **runs: Callable[[], float]) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(reps):
        for name, run in runs.items():
            times[name].append(run())
    return times


def baseline_workspace(rev: str) -> Workspace:
    """A workspace of the repository as it was at `rev` (a commit, branch or tag), with this venv."""
    source = Path(tempfile.mkdtemp(prefix="adaline-bench-baseline-"))
    subprocess.run(["git", "worktree", "add", "-q", "--detach", str(source), rev], cwd=REPO, check=True)
    try:
        return Workspace(source)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(source)], cwd=REPO, check=True)

"""`./pipeline sweep --verify K`: re-run K trials through DVC itself and require the same bytes.

Each chosen trial runs as `./pipeline dvc exp run -S <its values>` (the command its table row shows) in
a scratch copy of this checkout, params.yaml put back between trials, with its own throw-away MLflow
store. Every file the trial recorded must have the md5 the experiment left in the workspace; a trial that
failed must fail under DVC too.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from adaline_repro.core.checkout import PipelinePaths
from adaline_repro.core.errors import EXIT_OK, EXIT_VERIFY
from adaline_repro.ops.scratch import copy_worktree, scratch_env
from adaline_repro.sweep.grid import Trial
from adaline_repro.sweep.trial import TrialRecord, dvc_md5


def verify(
    root: Path,
    chosen: Sequence[Trial],
    records: dict[str, TrialRecord],
    paths: PipelinePaths,
    say: Callable[[str], None],
) -> int:
    """EXIT_OK when every chosen trial's bytes are DVC's; else EXIT_VERIFY, naming each trial and file."""
    scratch = copy_worktree(root, Path(tempfile.mkdtemp(prefix="adaline-sweep-verify-")))
    env = scratch_env(scratch, root, log_to_store=False)
    problems: list[str] = []
    try:
        for trial in chosen:
            subprocess.run(["git", "checkout", "-q", "HEAD", "--", "params.yaml"], cwd=scratch, check=True)
            command = ["./pipeline", "dvc", "exp", "run", *(a for o in trial.overrides for a in ("-S", o))]
            done = subprocess.run(command, cwd=scratch, env=env, capture_output=True, text=True)
            record = records[trial.id]
            found = _differences(trial, record, scratch, done.returncode, done.stdout + done.stderr)
            say(f"sweep --verify: trial {trial.id} ({' '.join(trial.overrides)}): "
                f"{'; '.join(found) if found else 'identical to dvc exp run'}")  # fmt: skip
            problems += [f"trial {trial.id}: {p}" for p in found]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if problems:
        say(f"sweep --verify: FAILED: {len(problems)} difference(s) from DVC (each row's command reproduces it)")
        return EXIT_VERIFY
    say(f"sweep --verify: {len(chosen)} trial(s) identical, byte for byte, to dvc exp run")
    return EXIT_OK


def _differences(trial: Trial, record: TrialRecord, scratch: Path, returncode: int, log: str) -> list[str]:
    if record.error:
        if returncode == 0:
            return [f"failed in the sweep ({record.error}) but dvc exp run succeeded"]
        return []
    if returncode != 0 and record.report.passed:
        tail = log.strip().splitlines()[-1] if log.strip() else ""
        return [f"dvc exp run failed (exit {returncode}: {tail}) where the sweep's trial passed"]
    out = []
    for name, md5 in sorted(record.files.items()):
        path = scratch / name
        if not path.is_file():
            out.append(f"{name}: missing after dvc exp run")
        elif (theirs := dvc_md5(path)) != md5:
            out.append(f"{name}: md5 {md5} in the sweep, {theirs} from dvc exp run")
    return out

"""The recovery of a run that is gone, by one rule.

A record whose lock is free belongs to a run that is gone: killed (its PID no longer runs that process), or
one that could not put its snapshot back (a full disk) and left it for the next run. The next run resolves
it by one rule:

- no snapshot yet: the run had not started DVC, nothing changed; its partial copies are removed;
- snapshot, stages not finished (state "restore"): the outputs and dvc.lock are put back from it;
- snapshot, stages finished (state "keep"): its results stay, the copies are removed;
- a command that takes no snapshot (`./pipeline dvc repro`): nothing to put back; DVC's next run redoes
  whatever that run left unfinished.

Before that, the dead run's leftover processes (a stage keeps running when only its parent is killed) are
stopped, and afterwards the MLflow runs its processes left RUNNING are marked KILLED.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from adaline_repro import processes
from adaline_repro.files import WriteError
from adaline_repro.processes import ProcessId
from adaline_repro.repro import rollback
from adaline_repro.repro.run_record import RECORD, Record


class RecoveryFailed(WriteError):
    """A dead run's snapshot could not be put back (the disk is still full): nothing was run."""


def recover(root: Path, dead: Record, say: Callable[[str], None]) -> None:
    """Resolve a dead run's snapshot by the rule in the module docstring; one line says what was done."""
    process = ProcessId.parse(dead.process)
    if process is not None and not dead.left:
        leftovers = processes.started_by(process)
        if leftovers:
            processes.stop(leftovers)
    # A dead PID: killed, or it ended on a full disk too full even to note that it left its snapshot.
    what = "could not put its outputs back" if dead.left else "stopped part-way"
    snapshot = rollback.load(root, root / dead.snapshot) if dead.snapshot else None
    remove_strays(root, snapshot.folder if snapshot else None)
    if not dead.rollback:
        say(f"the previous run, {dead.who()}, {what}; it keeps no copies to put back: ./pipeline repro "
            "redoes what it left unfinished")  # fmt: skip
    elif snapshot is None:
        say(f"the previous run, {dead.who()}, stopped before it changed anything")
    elif dead.state == "keep":
        rollback.discard(snapshot)
        say(f"the previous run, {dead.who()}, stopped after its stages had finished: its results are kept")
    else:
        failed = rollback.restore(snapshot)
        if failed:
            raise RecoveryFailed(
                f"the previous run, {dead.who()}, {what}, and its outputs still cannot be put back: "
                f"{rollback.summary(failed)}; the copies are in {dead.snapshot}; free space and run again"
            )
        say(f"the previous run, {dead.who()}, {what}: outputs and dvc.lock are as they were before it")
    (root / RECORD).unlink(missing_ok=True)
    from adaline_repro.tracking import orphans

    orphans.mark_killed(root, say)


def remove_strays(root: Path, keep: Path | None) -> None:
    """Snapshot folders no record vouches for (a run killed while it copied): removed."""
    for folder in rollback.strays(root, keep):
        shutil.rmtree(folder, ignore_errors=True)

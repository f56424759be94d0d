"""The MLflow runs a dead process of this checkout left RUNNING (a SIGKILL ends no run), marked KILLED
after a run is found dead, with one line saying how many."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from adaline_repro.errors import ReproError
from adaline_repro.tracking.reachable import check_tracking_store
from adaline_repro.workspace import embedded_db, repository_root, tracking_uri


def mark_killed(root: Path, say: Callable[[str], None]) -> None:
    """Mark KILLED the runs a dead process of this checkout left RUNNING (imports MLflow: seconds, paid only
    after a process died). A store that cannot be reached is said, not fatal: the track stage does the
    same whenever it logs."""
    uri = tracking_uri(repository_root(root))
    db = embedded_db(uri)
    if db is not None and not db.exists():
        return
    try:
        check_tracking_store(uri)
        from adaline_repro.tracking import store

        ended = store.end_orphaned_runs(uri)
    except ReproError as exc:
        say(f"could not mark the MLflow runs of dead processes KILLED: {exc}")
        return
    if ended:
        say(f"marked {ended} MLflow run{'s' if ended != 1 else ''} KILLED that a dead process of this "
            "checkout had left RUNNING")  # fmt: skip

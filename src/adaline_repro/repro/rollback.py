"""A failed `./pipeline repro` leaves the workspace as it found it: outputs and dvc.lock put back.

DVC deletes a stage's outputs before running it, and records each stage that succeeded in dvc.lock as it
goes; a run that then stops on bad data, a diverging learning rate, a full disk or Ctrl-C would leave
some outputs gone and others new. Before DVC starts, every output dvc.lock names (all small: data, JSON,
CSV, a PNG) and dvc.lock itself are copied aside; on failure they are put back. A failing comparison is
not rolled back: its report is the result the user needs to see.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from adaline_repro.repro.uptodate import locked_paths


@dataclass(frozen=True)
class Snapshot:
    root: Path
    folder: Path  # the copies, under .dvc/tmp
    present: tuple[str, ...]  # paths (relative to root) that existed, copied
    absent: tuple[str, ...]  # paths that did not exist: removed again on restore


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _copy(source: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, dest, symlinks=False)
    else:
        shutil.copy2(source, dest)


def take(root: Path) -> Snapshot:
    """Copy every output dvc.lock names, and dvc.lock, aside."""
    folder = Path(tempfile.mkdtemp(prefix="adaline-rollback-", dir=_scratch(root)))
    paths = ["dvc.lock", *locked_paths(root, ("outs",))]
    present, absent = [], []
    for name in paths:
        source = root / name
        if source.exists():
            _copy(source, folder / name)
            present.append(name)
        else:
            absent.append(name)
    return Snapshot(root, folder, tuple(present), tuple(absent))


def restore(snapshot: Snapshot) -> None:
    """Put every path back as it was when the snapshot was taken, then discard the snapshot."""
    for name in snapshot.present:
        target = snapshot.root / name
        _remove(target)
        _copy(snapshot.folder / name, target)
    for name in snapshot.absent:
        _remove(snapshot.root / name)
    discard(snapshot)


def discard(snapshot: Snapshot) -> None:
    shutil.rmtree(snapshot.folder, ignore_errors=True)


def _scratch(root: Path) -> Path:
    folder = root / ".dvc" / "tmp"  # DVC's own scratch space: gitignored, on the same file system
    folder.mkdir(parents=True, exist_ok=True)
    return folder

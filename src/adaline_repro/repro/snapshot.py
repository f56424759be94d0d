"""The files a run may change, copied aside before it and put back whole: the mechanics under CheckoutRun.

Every output dvc.lock names (all small: data, JSON, CSV, a PNG), dvc.lock itself and any extra path (a
workspace `dvc exp run` adds params.yaml) are copied into a folder of their own under .dvc/tmp, with a
manifest written last, so another process can put them back after this one was killed. Putting back is
safe on a full disk: the run's files are removed first (their space is what the copies need), each copy
lands through a temporary name and a rename, so a file is either restored whole or missing, never
half-written; what could not be put back is reported and the copies are kept for a later try.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from adaline_repro.core.checkout import DVC_TMP, locked_paths
from adaline_repro.core.errors import WriteError
from adaline_repro.core.files import atomic_write_text, json_text

PREFIX = "adaline-rollback-"
_MANIFEST = "manifest.json"  # inside the folder; its presence marks a complete snapshot


@dataclass(frozen=True)
class Snapshot:
    root: Path
    folder: Path  # the copies, under .dvc/tmp
    present: tuple[str, ...]  # paths (relative to root) that existed, copied; dvc.lock first
    absent: tuple[str, ...]  # paths that did not exist: removed again on restore


def take(root: Path, extra: tuple[str, ...] = ()) -> Snapshot:
    """Copy every output dvc.lock names, dvc.lock and `extra` aside; a WriteError (nothing kept) if the
    copies do not fit."""
    (root / DVC_TMP).mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=PREFIX, dir=root / DVC_TMP))
    present, absent = [], []
    for name in dict.fromkeys(["dvc.lock", *locked_paths(root, ("outs",)), *extra]):
        source = root / name
        if not source.exists():
            absent.append(name)
            continue
        try:
            _copy(source, folder / name)
        except OSError as exc:
            shutil.rmtree(folder, ignore_errors=True)
            raise WriteError(
                f"{name}: cannot copy it aside to {DVC_TMP} before the run "
                f"({exc.strerror or exc}); nothing was run or changed"
            ) from None
        present.append(name)
    snapshot = Snapshot(root, folder, tuple(present), tuple(absent))
    try:
        atomic_write_text(folder / _MANIFEST, json_text({"present": present, "absent": absent}))
    except WriteError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise WriteError(f"{exc}; nothing was run or changed") from None
    return snapshot


def load(root: Path, folder: Path) -> Snapshot | None:
    """The snapshot in `folder`, or None when its copying never finished (no manifest)."""
    try:
        manifest = json.loads((folder / _MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return Snapshot(root, folder, tuple(manifest["present"]), tuple(manifest["absent"]))


def restore(snapshot: Snapshot) -> list[str]:
    """Put every path back as it was when the snapshot was taken, then discard the snapshot.

    Returns what could not be put back, as `path (reason)`; then the copies stay, for a later restore."""
    failed = []
    for name in (*snapshot.present, *snapshot.absent):
        try:
            _remove(snapshot.root / name)
        except OSError as exc:
            failed.append(f"{name} ({exc.strerror or exc})")
    for name in snapshot.present:
        try:
            _put_back(snapshot.folder / name, snapshot.root / name)
        except OSError as exc:
            failed.append(f"{name} ({exc.strerror or exc})")
    if not failed:
        discard(snapshot)
    return failed


def summary(failed: list[str], shown: int = 3) -> str:
    """`dvc.lock (No space left on device), models/manual.json (...) and 20 more`: short enough for one line."""
    more = len(failed) - shown
    return ", ".join(failed[:shown]) + (f" and {more} more" if more > 0 else "")


def discard(snapshot: Snapshot) -> None:
    shutil.rmtree(snapshot.folder, ignore_errors=True)


def strays(root: Path, keep: Path | None = None) -> list[Path]:
    """Snapshot folders in this checkout other than `keep`: left by a run killed while it took them."""
    found = sorted((root / DVC_TMP).glob(PREFIX + "*"))
    return [f for f in found if keep is None or f.resolve() != keep.resolve()]


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


def _put_back(copy: Path, target: Path) -> None:
    """Whole or not at all: copied beside the target under a temporary name, then renamed onto it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        if copy.is_dir():
            for path in sorted(copy.rglob("*")):  # file by file: an OSError names its reason (copytree's would not)
                dest = staging / path.relative_to(copy)
                if path.is_dir():
                    dest.mkdir(exist_ok=True)
                else:
                    shutil.copy2(path, dest)
            staging.rename(target)
        else:
            shutil.copy2(copy, staging / target.name)
            (staging / target.name).rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

"""`./pipeline repro`'s shortcut: when no file DVC looks at changed since the last full repro, skip DVC.

`dvc repro` takes its start-up, reading dvc.yaml and dvc.lock and checking every dependency to find that
nothing changed (docs/performance.md has the figures). After a successful `./pipeline repro` this module records the
size, modification time (ns) and inode of every path dvc.lock names, of dvc.yaml, dvc.lock, params.yaml,
the venv's requirements stamp and DVC's config; if all of them are still the same, nothing DVC decides on
has changed, so the next plain `./pipeline repro` answers at once. DVC's own state database trusts the
same three numbers to skip re-hashing. Any difference, or any argument to `repro`, runs DVC as usual.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from adaline_repro.core.checkout import DVC_TMP, locked_paths
from adaline_repro.core.files import atomic_write_text

STAMP = DVC_TMP / "adaline-uptodate.json"
# Besides what dvc.lock lists: what DVC reads to decide, and what says which packages run the stages.
_ALWAYS = ("dvc.yaml", "dvc.lock", "params.yaml", ".dvc/config", ".dvc/config.local", ".dvcignore")


def _stat(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def snapshot(root: Path, named: list[str], venv_stamp: Path) -> dict[str, list[int] | None]:
    """Path -> [size, mtime_ns, inode] (None when absent), directories walked (new files show up)."""
    state: dict[str, list[int] | None] = {}
    for rel in (*_ALWAYS, *named):
        path = root / rel
        state[rel] = _stat(path)
        if path.is_dir():
            for dirpath, dirnames, filenames in os.walk(path):
                dirnames.sort()
                for name in (*dirnames, *sorted(filenames)):
                    full = Path(dirpath) / name
                    state[str(full.relative_to(root))] = _stat(full)
    state["<venv requirements stamp>"] = _stat(venv_stamp)
    return state


def unchanged(root: Path, venv_stamp: Path) -> bool:
    """True when every file looks as it did after the last successful full repro."""
    try:
        recorded = json.loads((root / STAMP).read_text(encoding="utf-8"))
        named, state = recorded["named"], recorded["state"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    # dvc.lock is among the stat'ed files: while it is unchanged, so is the list of paths it names.
    return snapshot(root, named, venv_stamp) == state


def record(root: Path, venv_stamp: Path) -> None:
    """After a successful full repro (everything up to date): remember what the files look like."""
    stamp = root / STAMP
    try:
        named = locked_paths(root)
    except Exception:  # an unreadable dvc.lock: no shortcut next time, DVC will say what is wrong
        stamp.unlink(missing_ok=True)
        return
    atomic_write_text(stamp, json.dumps({"named": named, "state": snapshot(root, named, venv_stamp)}))


def forget(root: Path) -> None:
    (root / STAMP).unlink(missing_ok=True)

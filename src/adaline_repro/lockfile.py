"""dvc.lock as the project reads it: the paths its stages record (dvc.lock is DVC's documented, public
format; dvc.yaml's paths are read by paths.py beside this)."""

from __future__ import annotations

from pathlib import Path

from adaline_repro.files import safe_yaml


def locked_paths(root: Path, sections: tuple[str, ...] = ("deps", "outs")) -> list[str]:
    """Every dependency and/or output path of every stage dvc.lock records."""
    lock_file = root / "dvc.lock"
    lock = safe_yaml(lock_file.read_text(encoding="utf-8")) if lock_file.exists() else None
    paths = set()
    for stage in (lock or {}).get("stages", {}).values():
        for section in sections:
            paths.update(entry["path"] for entry in stage.get(section, []))
    return sorted(paths)

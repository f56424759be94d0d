"""Where two versions of a result file first differ: the CSV cell, the JSON key, the line or the byte."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class FirstDifference:
    """The first value in which a fresh file differs from its committed version."""

    file: str
    where: str  # "line 8 (epoch=7), column train_mse", "key weight[1]", "line 12", "byte 1043", "missing"
    committed: str | None
    fresh: str | None

    def __str__(self) -> str:
        return f"{self.file}: {self.where}: committed {self.committed}, fresh {self.fresh}"

    def as_dict(self) -> dict[str, str | None]:
        return {"committed": self.committed, "file": self.file, "fresh": self.fresh, "where": self.where}


def first_difference(name: str, committed: bytes | None, fresh: bytes | None) -> FirstDifference | None:
    """None when the bytes are equal; else the first differing value, read as the file's format allows."""
    if committed == fresh:
        return None
    if committed is None or fresh is None:
        return FirstDifference(name, "file", "missing" if committed is None else "present",
                               "missing" if fresh is None else "present")  # fmt: skip
    try:
        old, new = committed.decode("utf-8"), fresh.decode("utf-8")
    except UnicodeDecodeError:
        return _first_byte(name, committed, fresh)
    if name.endswith(".csv"):
        return _first_cell(name, old, new)
    if name.endswith(".json"):
        found = _first_key(name, old, new)
        if found is not None:
            return found
    return _first_line(name, old, new)


def differing_files(committed_root: Path, fresh_root: Path, names: list[str]) -> list[FirstDifference]:
    """Each of `names` (relative paths) whose bytes differ between the two roots, in the order given."""
    found = []
    for name in names:
        old, new = committed_root / name, fresh_root / name
        difference = first_difference(
            name, old.read_bytes() if old.is_file() else None, new.read_bytes() if new.is_file() else None
        )
        if difference is not None:
            found.append(difference)
    return found


def _first_byte(name: str, a: bytes, b: bytes) -> FirstDifference:
    at = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    return FirstDifference(name, f"byte {at} (sizes {len(a)} and {len(b)})", a[at : at + 8].hex(), b[at : at + 8].hex())


def _first_line(name: str, a: str, b: str) -> FirstDifference:
    old, new = a.splitlines(), b.splitlines()
    for number in range(1, max(len(old), len(new)) + 1):
        left = old[number - 1] if number <= len(old) else None
        right = new[number - 1] if number <= len(new) else None
        if left != right:
            return FirstDifference(name, f"line {number}", left, right)
    return FirstDifference(name, "line endings or trailing bytes", repr(a[-20:]), repr(b[-20:]))


def _first_cell(name: str, a: str, b: str) -> FirstDifference:
    old, new = list(csv.reader(io.StringIO(a))), list(csv.reader(io.StringIO(b)))
    header = old[0] if old else []
    for index in range(max(len(old), len(new))):
        left = old[index] if index < len(old) else None
        right = new[index] if index < len(new) else None
        if left == right:
            continue
        if left is None or right is None or len(left) != len(right) or index == 0:
            return FirstDifference(name, f"line {index + 1}", _row(left), _row(right))
        column = next(i for i, (x, y) in enumerate(zip(left, right, strict=True)) if x != y)
        label = header[column] if column < len(header) else f"column {column + 1}"
        row = f"{header[0]}={left[0]}" if header and column else f"row {index}"
        return FirstDifference(name, f"line {index + 1} ({row}), column {label}", left[column], right[column])
    return _first_line(name, a, b)


def _row(row: list[str] | None) -> str | None:
    return None if row is None else ",".join(row)


def _first_key(name: str, a: str, b: str) -> FirstDifference | None:
    try:
        old, new = json.loads(a), json.loads(b)
    except json.JSONDecodeError:
        return None
    found = _walk(old, new, "")
    if found is None:  # same values, other bytes (formatting)
        return None
    where, left, right = found
    return FirstDifference(name, f"key {where or '(top level)'}", left, right)


_ABSENT = object()


def _walk(a: object, b: object, at: str) -> tuple[str, str | None, str | None] | None:
    """The first differing leaf of two JSON values, keys in sorted order, as (path, committed, fresh)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            found = _walk(a.get(key, _ABSENT), b.get(key, _ABSENT), f"{at}.{key}" if at else key)
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            found = _walk(x, y, f"{at}[{index}]")
            if found:
                return found
        return None
    if a is _ABSENT or b is _ABSENT or a != b or type(a) is not type(b):
        return at, _text(a), _text(b)
    return None


def _text(value: object) -> str | None:
    return None if value is _ABSENT else json.dumps(value)

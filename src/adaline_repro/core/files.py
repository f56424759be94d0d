"""Deterministic, atomic reading and writing of the pipeline's JSON and CSV files."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import yaml

from adaline_repro.core.errors import InputError, WriteError


class DataError(InputError):
    """An input file is missing, unreadable or not in the expected format."""


def float_text(value: float, dtype: str = "float32") -> str:
    """Shortest decimal that reads back to exactly the same value in `dtype`."""
    if dtype == "float64":
        return repr(float(value))
    import numpy as np  # here, not at the top: the fetch stage writes no floats and skips numpy's import

    return str(np.float32(value))


def float_texts(values: object, dtype: str = "float32") -> list:
    """float_text of every value of an array-like (any shape, as nested lists), for large records: numpy
    writes the shortest decimal the same way, for all values at once (a test holds the two equal)."""
    import numpy as np

    return np.asarray(values, dtype=np.float64).astype(dtype).astype(str).tolist()


def exact_float(value: float, dtype: str = "float32") -> float:
    """A Python float whose repr is the shortest text for `value` in `dtype` (so JSON stays short)."""
    return float(float_text(value, dtype))


_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_text(path: Path | str, text: str) -> None:
    """Write through a temporary file in the same folder, then rename: readers never see half a file."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """As atomic_write_text; a full disk or a read-only folder is one line naming the file, and leaves the
    file as it was and no temporary file behind."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _cannot_write(path, exc) from None
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; outputs get the usual permissions
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _cannot_write(path, exc) from None
        raise


def _cannot_write(path: Path, exc: OSError) -> WriteError:
    return WriteError(f"{path}: cannot write ({exc.strerror or exc})")


def json_text(data: object) -> str:
    return json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n"


def write_json(path: Path | str, data: object) -> None:
    atomic_write_text(path, json_text(data))


def read_json(path: Path | str) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except ValueError as exc:  # not JSON, or not UTF-8
        raise DataError(f"{path}: not a JSON file ({exc})") from None


def csv_text(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def write_csv(path: Path | str, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    atomic_write_text(path, csv_text(header, rows))


def read_csv(path: Path | str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a CSV file, as text."""
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise DataError(f"{path}: empty file, expected a header line")
            return header, [row for row in reader if row]
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: not a CSV text file ({exc})") from None


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path | str) -> str:
    return sha256_bytes(Path(path).read_bytes())


def safe_yaml(text: str) -> object:
    """YAML parsed with a safe loader only (libyaml's when present, about 20x faster): the one place in the
    code that calls yaml.load, so no file can construct Python objects."""
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 (safe loaders only)

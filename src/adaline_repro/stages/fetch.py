"""Fetch stage: the raw Iris table from scikit-learn's bundled copy, a local file or an https URL."""

from __future__ import annotations

import importlib.resources
import math
import sys
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from adaline_repro.core.errors import EXIT_OK, InputError
from adaline_repro.core.files import atomic_write_text, csv_text, sha256_bytes
from adaline_repro.core.params import FEATURES, SPECIES, FetchParams, load_section
from adaline_repro.stages import parser, run_stage, say

RAW_HEADER = (*FEATURES, "species")
N_ROWS = 150
_UCI_NAMES = {f"Iris-{name}": name for name in SPECIES}
_DOWNLOAD_TIMEOUT_S = 30


class FetchError(InputError):
    """The source could not be read, did not match its sha256, or is not an Iris table."""


def _sklearn_iris() -> tuple[str, bytes]:
    """The CSV scikit-learn ships, read through the package that holds it (importlib.resources imports
    scikit-learn: a second or so, once per data change)."""
    try:
        source = importlib.resources.files("sklearn.datasets.data") / "iris.csv"
    except ModuleNotFoundError:
        raise FetchError("fetch.source is 'sklearn' but scikit-learn is not installed") from None
    try:
        return str(source), source.read_bytes()
    except OSError as exc:
        raise FetchError(f"{source}: cannot read ({exc.strerror})") from None


def read_source(params: FetchParams) -> tuple[str, bytes]:
    """(description of the source, its bytes)."""
    if params.source == "sklearn":
        return _sklearn_iris()
    if params.source == "path":
        return params.location, _read_file(Path(params.location))
    return params.location, _download(params.location)


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise FetchError(f"{path}: cannot read ({exc.strerror})") from None


def _download(url: str) -> bytes:
    if not url.startswith("https://"):
        raise FetchError(f"{url}: only https:// URLs are accepted")
    try:
        with urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as response:  # noqa: S310 (https only, checked above)
            return response.read()
    except OSError as exc:
        raise FetchError(f"{url}: download failed ({exc})") from None


def parse_iris(source: str, data: bytes, *, sklearn_format: bool) -> list[tuple[str, ...]]:
    """Rows of (four feature texts, species name), checked: 150 rows, numbers finite, species known."""
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise FetchError(f"{source}: not UTF-8 text") from None
    numbered = [(i + 1, line) for i, line in enumerate(lines) if line.strip()]
    if sklearn_format:
        numbered = numbered[1:]  # "150,4,setosa,versicolor,virginica"
    rows = []
    for line_no, line in numbered:
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != 5:
            raise FetchError(f"{source}: line {line_no}: expected 5 columns, found {len(cells)}")
        values = []
        for name, cell in zip(FEATURES, cells[:4], strict=True):
            try:
                value = float(cell)
            except ValueError:
                raise FetchError(f"{source}: line {line_no}: {name} is not a number ({cell!r})") from None
            if not math.isfinite(value):
                raise FetchError(f"{source}: line {line_no}: {name} is not finite ({cell!r})")
            values.append(repr(value))
        label = cells[4]
        if sklearn_format:
            species = SPECIES[int(label)] if label in ("0", "1", "2") else None
        else:
            species = _UCI_NAMES.get(label)
        if species is None:
            raise FetchError(f"{source}: line {line_no}: unknown species {label!r}")
        rows.append((*values, species))
    if len(rows) != N_ROWS:
        raise FetchError(f"{source}: expected {N_ROWS} rows, found {len(rows)}")
    return rows


def fetch(params: FetchParams) -> str:
    """The raw table as CSV text; raises FetchError before anything is written."""
    source, data = read_source(params)
    digest = sha256_bytes(data)
    if digest != params.sha256:
        raise FetchError(f"{source}: sha256 mismatch: expected fetch.sha256={params.sha256}, got {digest}")
    rows = parse_iris(source, data, sklearn_format=params.source == "sklearn")
    return csv_text(RAW_HEADER, rows)


def write_outputs(params: FetchParams, out: Path) -> None:
    """The raw table, checked, written to `out`."""
    atomic_write_text(out, fetch(params))


def stage(params_yaml: Path, out: Path, say: Callable[[str], None]) -> int:
    """The fetch stage: write the raw Iris table to `out`."""
    write_outputs(load_section(params_yaml, FetchParams), out)
    say(f"fetch: wrote {out}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = parser("fetch", "Write the raw Iris table, checked against fetch.sha256.", "out").parse_args(argv)
    return stage(args.params, args.out, say)


if __name__ == "__main__":
    sys.exit(run_stage(main))

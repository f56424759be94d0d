"""Fetch: the bundled copy by default, a local UCI file as alternative, and sha256 always enforced."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from adaline_repro.fetch import RAW_HEADER, FetchError, fetch, sklearn_iris_path
from adaline_repro.files import sha256_file
from adaline_repro.params import FetchParams


def _uci_file(tmp_path: Path) -> Path:
    """The bundled table rewritten in UCI's iris.data format (no header, Iris-<species>, trailing blank line)."""
    text = fetch(FetchParams(source="sklearn", sha256=sha256_file(sklearn_iris_path())))
    rows = list(csv.reader(io.StringIO(text)))[1:]
    path = tmp_path / "iris.data"
    path.write_text("".join(",".join([*r[:4], f"Iris-{r[4]}"]) + "\n" for r in rows) + "\n")
    return path


def test_default_source_is_the_bundled_copy(params):
    """150 rows, four features and the species name, setosa first, as the dataset orders them."""
    rows = list(csv.reader(io.StringIO(fetch(params.fetch))))
    assert tuple(rows[0]) == RAW_HEADER
    assert len(rows) == 151
    assert rows[1] == ["5.1", "3.5", "1.4", "0.2", "setosa"]
    assert [r[4] for r in rows[1:]] == ["setosa"] * 50 + ["versicolor"] * 50 + ["virginica"] * 50


def test_local_uci_file_gives_the_same_table(tmp_path, params):
    """A local iris.data in UCI format yields the same raw CSV as the bundled copy."""
    path = _uci_file(tmp_path)
    local = FetchParams(source="path", location=str(path), sha256=sha256_file(path))
    assert fetch(local) == fetch(params.fetch)


def test_sha256_mismatch_is_an_error(tmp_path):
    path = _uci_file(tmp_path)
    wrong = FetchParams(source="path", location=str(path), sha256="0" * 64)
    with pytest.raises(FetchError, match=r"sha256 mismatch: expected fetch\.sha256=0{64}, got [0-9a-f]{64}"):
        fetch(wrong)


def test_malformed_row_is_reported_with_its_line(tmp_path):
    path = _uci_file(tmp_path)
    lines = path.read_text().splitlines()
    lines[6] = "5.4,abc,1.7,0.4,Iris-setosa"
    path.write_text("\n".join(lines))
    with pytest.raises(FetchError, match=r"line 7: sepal_width is not a number \('abc'\)"):
        fetch(FetchParams(source="path", location=str(path), sha256=sha256_file(path)))


def test_truncated_file_is_reported(tmp_path):
    path = _uci_file(tmp_path)
    path.write_text("\n".join(path.read_text().splitlines()[:120]))
    with pytest.raises(FetchError, match="expected 150 rows, found 120"):
        fetch(FetchParams(source="path", location=str(path), sha256=sha256_file(path)))

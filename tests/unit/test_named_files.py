"""Every repository file a comment, docstring, doc or configuration names exists: a moved or deleted file
leaves no pointer to nowhere behind it."""

from __future__ import annotations

import re

from tests.conftest import REPO

# A path inside the repository, as the text names it: under one of its folders, with a file's extension.
NAMED = re.compile(r"(?<![\w/.-])((?:src/adaline_repro|tests|bench|docs|\.github/workflows|\.ci)/[\w./-]+"
                   r"\.(?:py|md|yml|yaml|sh|c))\b")  # fmt: skip
TEMPLATE = re.compile(r"[*<{$]")  # `backends/<name>.py`, `${item.backend}`: a pattern, not a file


def _texts() -> list:
    return sorted(
        {
            *REPO.joinpath("src").rglob("*.py"),
            *REPO.joinpath("tests").rglob("*.py"),
            *REPO.joinpath("bench").glob("*.py"),
            *REPO.joinpath("docs").glob("*.md"),
            *REPO.joinpath(".github", "workflows").glob("*.yml"),
            REPO / "README.md",
            REPO / "dvc.yaml",
            REPO / "pyproject.toml",
            REPO / "pipeline",
            REPO / ".ci" / "run",
        }
    )


def _pointers() -> list[tuple[str, str]]:
    found = []
    for path in _texts():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for match in NAMED.finditer(line):
                named = match.group(1).rstrip(".")
                if not TEMPLATE.search(named):
                    found.append((f"{path.relative_to(REPO)}:{number}", named))
    return found


def test_every_named_file_exists():
    pointers = _pointers()
    assert len(pointers) > 50  # not vacuous: the docs point into the code and the tests
    missing = [f"{where} names {named}" for where, named in pointers if not (REPO / named).exists()]
    assert missing == []


def test_a_pointer_to_nowhere_is_caught():
    """The pattern finds a path in a comment, and skips a pattern such as `backends/<name>.py`."""
    nowhere, gone = "src/adaline_repro/" + "nowhere.py", "docs/" + "gone.md"  # split: this file names neither
    line = f"# see {nowhere} and tests/unit/<name>.py and `{gone}`."
    assert [m.group(1) for m in NAMED.finditer(line) if not TEMPLATE.search(m.group(1))] == [nowhere, gone]

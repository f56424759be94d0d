"""The journal keeps every finished trial across a crash: a torn last line is dropped, not fatal, and the
next append starts a fresh line."""

from __future__ import annotations

import json

from adaline_repro.sweep.journal import Journal


def test_finished_trials_survive_and_the_last_record_of_an_id_wins(tmp_path):
    journal = Journal(tmp_path / "sweep" / "journal.jsonl")
    assert journal.done() == {}
    journal.append([{"id": "a", "error": None}, {"id": "b", "error": "x"}])
    journal.append([{"id": "a", "error": "again"}])
    assert Journal(journal.path).done() == {"a": {"id": "a", "error": "again"}, "b": {"id": "b", "error": "x"}}


def test_a_line_torn_by_a_crash_is_skipped_and_the_next_append_starts_a_new_line(tmp_path):
    journal = Journal(tmp_path / "journal.jsonl")
    journal.append([{"id": "a"}])
    with journal.path.open("a") as fh:
        fh.write(json.dumps({"id": "b", "files": {}})[:9])  # the process died mid-write
    assert set(journal.done()) == {"a"}
    journal.append([{"id": "c"}])
    assert set(journal.done()) == {"a", "c"}
    assert journal.path.read_text().count("\n") == 3

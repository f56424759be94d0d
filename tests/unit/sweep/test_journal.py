"""The journal keeps every finished trial across a crash: a torn last line is dropped, not fatal, and the
next append starts a fresh line."""

from __future__ import annotations

import json

from adaline_repro.sweep.journal import Journal
from adaline_repro.sweep.trial import TrialRecord


def _record(trial_id: str, error: str | None = None) -> TrialRecord:
    return TrialRecord(trial_id, (f"train.seed={len(trial_id)}",), error=error)


def test_finished_trials_survive_and_the_last_record_of_an_id_wins(tmp_path):
    journal = Journal(tmp_path / "sweep" / "journal.jsonl")
    assert journal.done() == {}
    journal.append([_record("a"), _record("b", "x")])
    journal.append([_record("a", "again")])
    assert Journal(journal.path).done() == {"a": _record("a", "again"), "b": _record("b", "x")}


def test_a_line_torn_by_a_crash_is_skipped_and_the_next_append_starts_a_new_line(tmp_path):
    journal = Journal(tmp_path / "journal.jsonl")
    journal.append([_record("a")])
    with journal.path.open("a") as fh:
        fh.write(json.dumps(_record("b").to_json())[:9])  # the process died mid-write
    assert set(journal.done()) == {"a"}
    journal.append([_record("c")])
    assert set(journal.done()) == {"a", "c"}
    assert journal.path.read_text().count("\n") == 3

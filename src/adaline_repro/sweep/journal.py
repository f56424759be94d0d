"""The sweep's journal: one JSON line per finished trial, appended as each one comes back, so a sweep that is
interrupted (Ctrl-C, the driver or the head node dying) resumes with the same command and skips them.

A line is written whole or not at all as far as a reader is concerned: a torn last line (the process died
mid-write) is ignored and that trial runs again. The journal's folder is named by everything a trial's
bytes depend on (driver.py's key), so a resumed sweep never mixes results of other code or params.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from adaline_repro.sweep.trial import TrialRecord


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def done(self) -> dict[str, TrialRecord]:
        """Trial id -> its record, for every complete line (the last record of an id wins)."""
        records: dict[str, TrialRecord] = {}
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return records
        for line in text.splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line torn by a crash: that trial runs again
                continue
            if isinstance(record, dict) and isinstance(record.get("id"), str):
                records[record["id"]] = TrialRecord.from_json(record)
        return records

    def append(self, records: list[TrialRecord]) -> None:
        """Add finished trials, flushed to disk before returning."""
        if not records:
            return
        lines = "".join(json.dumps(r.to_json(), sort_keys=True, allow_nan=False) + "\n" for r in records)
        with self.path.open("a", encoding="utf-8") as fh:
            if fh.tell() and not self._ends_with_newline():
                fh.write("\n")  # after a torn line, start a fresh one
            fh.write(lines)
            fh.flush()
            os.fsync(fh.fileno())

    def _ends_with_newline(self) -> bool:
        with self.path.open("rb") as fh:
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) == b"\n"

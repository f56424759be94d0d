"""Who holds the checkout: the run lock's record (.dvc/tmp/adaline-run.json), written atomically by the
holder and read by any run that finds the checkout taken or finds a dead run's leftovers."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from adaline_repro.files import WriteError, atomic_write_text, json_text
from adaline_repro.processes import ProcessId
from adaline_repro.workspace import DVC_TMP

RECORD = DVC_TMP / "adaline-run.json"


@dataclass(frozen=True)
class Record:
    command: str
    process: str  # ProcessId as text
    host: str
    since: str  # local time the run started
    snapshot: str | None = None  # folder relative to the root, once complete
    state: str = "restore"  # what to do with the snapshot if this run dies: "restore" or "keep"
    left: bool = False  # the run ended but left its snapshot to the next run (it could not put it back)
    rollback: bool = True  # whether this command takes a snapshot at all

    def who(self) -> str:
        pid = ProcessId.parse(self.process)
        where = "" if self.host == os.uname().nodename else f" on {self.host}"
        return f"{self.command} (PID {pid.pid if pid else '?'}{where}, started {self.since})"


def read_record(root: Path) -> Record | None:
    try:
        return Record(**json.loads((root / RECORD).read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError):
        return Record(command="an earlier run (its record is unreadable)", process="", host="", since="?",
                      left=True)  # fmt: skip


def write_record(root: Path, record: Record) -> None:
    try:
        atomic_write_text(root / RECORD, json_text(asdict(record)))
    except WriteError as exc:  # named as the user sees it, from the checkout
        raise WriteError(f"{RECORD}{str(exc).removeprefix(str(root / RECORD))}; nothing was run or changed") from None

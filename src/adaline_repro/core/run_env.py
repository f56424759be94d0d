"""What a run hands down to the processes it starts, and what the stages hand back to it.

`./pipeline repro` (and a workspace `./pipeline dvc exp run`) runs DVC, and DVC runs the stage commands; a
stage reaches its run only through the environment they inherit and the files they write:

- RUN: who started them ("<pid>:<start>"): a later run finds a dead run's leftover stage processes by it;
- VERBOSE: "1" makes the stages print their detail too (compare: its table), for `repro -v`;
- OUTCOMES: a folder where each stage command notes that it started and, when it ends, its exit code,
  under the name DVC runs it by (DVC_STAGE: `train@manual`). The run judges a failed `dvc repro` by these
  notes, not by DVC's messages: which stage failed, with which code, and which was killed.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from adaline_repro.core.files import atomic_write_text

RUN = "ADALINE_RUN"
VERBOSE = "ADALINE_VERBOSE"
OUTCOMES = "ADALINE_OUTCOMES"
_DVC_STAGE = "DVC_STAGE"  # set by DVC for every stage command it runs (DVC >= 3.49)


@dataclass(frozen=True)
class Outcome:
    stage: str  # as DVC names it: `compare`, `train@manual`
    exit_code: int | None  # None: started and never ended (killed by a signal)
    order: int  # the order the stages started in


def verbose() -> bool:
    return os.environ.get(VERBOSE) == "1"


def _note(code: int | None) -> None:
    folder, stage = os.environ.get(OUTCOMES), os.environ.get(_DVC_STAGE)
    if not folder or not stage:  # not run by DVC under ./pipeline: nobody reads it
        return
    path = Path(folder) / (stage.replace(os.sep, "%") + ".json")  # `dir/dvc.yaml:stage` for a nested dvc.yaml
    order = json.loads(path.read_text(encoding="utf-8"))["order"] if path.exists() else time.monotonic_ns()
    atomic_write_text(path, json.dumps({"stage": stage, "exit_code": code, "order": order}))


def started() -> None:
    """The stage command has started (its outputs are gone: DVC deleted them before starting it)."""
    _note(None)


def ended(code: int) -> None:
    """The stage command ends with `code`."""
    _note(code)


def outcomes(folder: Path) -> list[Outcome]:
    """Every stage the run's DVC started, in the order they started."""
    found = []
    for path in folder.glob("*.json"):
        data = json.loads(path.read_text(encoding="utf-8"))
        found.append(Outcome(data["stage"], data["exit_code"], data["order"]))
    return sorted(found, key=lambda o: o.order)

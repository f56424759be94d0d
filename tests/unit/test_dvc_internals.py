"""The DVC seam's readers on the exception chains DVC builds (the same types, raised here): the failing stage
and its exit code, DVC's own failed write, another DVC process's lock; and its reading of `dvc status --json`.
tests/e2e/test_dvc_internals.py has real DVC write every file and message."""

from __future__ import annotations

import errno
import logging
import os

import pytest
from dvc.exceptions import ReproductionError
from dvc.lock import LockError
from dvc.stage.exceptions import StageCmdFailedError

from adaline_repro.dvc_internals import StageFailure, stale_reasons


def _report(exc: BaseException) -> StageFailure:
    failure = StageFailure()
    logger = logging.getLogger("dvc.test")
    logger.addHandler(failure)
    try:
        raise exc
    except BaseException:
        logger.exception("")
    finally:
        logger.removeHandler(failure)
    return failure


def _chain(inner: BaseException) -> ReproductionError:
    try:
        raise inner
    except BaseException as exc:
        try:
            raise ReproductionError("failed to reproduce 'prepare'") from exc
        except ReproductionError as outer:
            return outer


def test_the_stage_and_its_exit_code():
    failure = _report(_chain(StageCmdFailedError("./pipeline train --backend manual", 2)))
    assert (failure.stage, failure.code, failure.written, failure.busy) == ("prepare", 2, None, None)


def test_a_full_disk_under_dvc_names_the_file_when_the_error_carries_it(tmp_path):
    target = tmp_path / "cache" / "runs" / "x.tmp"
    failure = _report(_chain(OSError(errno.ENOSPC, "No space left on device", str(target))))
    assert failure.stage == "prepare"
    assert failure.written == f"{os.path.relpath(target)}: cannot write (No space left on device)"


def test_another_dvc_process_holding_a_path_is_one_line():
    message = (
        "'data/prepared/scaler.json' is busy, it is being blocked by:\n  (PID 4242): dvc exp run\n\n"
        "If there are no processes with such PIDs, you can manually remove '.dvc/tmp/rwlock' and try again."
    )
    failure = _report(_chain(LockError(message)))
    assert failure.busy == "data/prepared/scaler.json is in use by dvc exp run (PID 4242)"


def test_a_full_disk_under_dvc_with_no_file_to_name_names_the_stage():
    failure = _report(_chain(OSError(errno.ENOSPC, "No space left on device")))
    assert failure.written == "DVC could not save the outputs of stage 'prepare' (No space left on device)"


@pytest.mark.parametrize("code", [errno.EMFILE, errno.ENOENT])
def test_other_os_errors_are_not_taken_for_a_full_disk(code):
    failure = _report(_chain(OSError(code, "other", "x")))
    assert failure.written is None


def test_status_changes_are_one_line_each_and_outputs_do_not_count():
    status = {
        "train@manual": [
            {"changed deps": {"params.yaml": {"train.epochs": "modified"},
                              "src/adaline_repro/stages/train.py": "modified", "data/prepared/train.csv": "modified"}},
            {"changed outs": {"models/manual.json": "modified"}},
            {"changed command": True},
        ],
        "fetch": ["always changed"],
    }  # fmt: skip
    assert stale_reasons(status) == [
        "fetch: always changed",
        "train@manual: params.yaml train.epochs modified",
        "train@manual: src/adaline_repro/stages/train.py modified",
        "train@manual: command changed",
    ]

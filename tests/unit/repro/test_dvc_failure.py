"""What made `dvc repro` fail, read from DVC's error record: the stage and its exit code, the file DVC
itself could not write (named even when the OSError carries no file name), another DVC process's lock."""

from __future__ import annotations

import errno
import logging
import os

import pytest
from dvc.exceptions import ReproductionError
from dvc.lock import LockError
from dvc.stage.exceptions import StageCmdFailedError

from adaline_repro.repro.dvc_failure import StageFailure


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


def test_a_full_disk_under_dvc_names_the_file_it_was_writing(tmp_path):
    def dump(path: str) -> None:  # as DVC's own writers: the write fails after open, no file name attached
        raise OSError(errno.ENOSPC, "No space left on device")

    target = str(tmp_path / "cache" / "runs" / "x.tmp")
    try:
        dump(target)
    except OSError as exc:
        failure = _report(_chain(exc))
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

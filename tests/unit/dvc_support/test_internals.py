"""What the DVC seam keeps of DVC's own failures: their type and attributes, never their text (a write refused
for lack of room or permission, with its file; another DVC process's lock); and its reading of `dvc status
--json`. tests/e2e/test_dvc_support.py has real DVC raise and write every one."""

from __future__ import annotations

import errno
import logging

import pytest
from dvc.exceptions import ReproductionError
from dvc.lock import LockError

from adaline_repro.dvc_support.internals import DvcFailure, stale_reasons


def _report(exc: BaseException) -> DvcFailure:
    """What the handler keeps when DVC logs `exc` as it logs a failure: logger.exception, at ERROR."""
    failure = DvcFailure()
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
            raise ReproductionError("any words at all") from exc
        except ReproductionError as outer:
            return outer


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES])
def test_a_write_refused_anywhere_in_the_chain_is_kept_with_its_file(tmp_path, code):
    target = tmp_path / "cache" / "x.tmp"
    failure = _report(_chain(OSError(code, "whatever the system says, in any language", str(target))))
    assert failure.write is not None
    assert (failure.write.errno, failure.write.filename, failure.locked) == (code, str(target), False)


@pytest.mark.parametrize("code", [errno.EMFILE, errno.ENOENT])
def test_other_os_errors_are_not_taken_for_a_full_disk(code):
    assert _report(_chain(OSError(code, "other", "x"))).write is None


def test_another_dvc_process_holding_a_path_is_known_by_its_type_whatever_it_says():
    assert _report(_chain(LockError("no sentence DVC ever wrote"))).locked is True
    assert _report(_chain(ValueError("'x' is busy, it is being blocked by: (PID 1): dvc"))).locked is False


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

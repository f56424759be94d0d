"""Which stage made `dvc repro` fail, and with which exit code.

DVC reports both only as text: ReproductionError("failed to reproduce 'stage'") caused by
StageCmdFailedError("failed to run: cmd, exited with N"), neither carrying them as attributes. This handler
reads them from DVC's error log record, matching those two exception types only.
"""

from __future__ import annotations

import logging
import re


class StageFailure(logging.Handler):
    """Attach to the `dvc` logger around `dvc repro`; afterwards `stage` and `code` say what failed."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.stage: str | None = None
        self.code: int | None = None

    def emit(self, record: logging.LogRecord) -> None:
        from dvc.exceptions import ReproductionError
        from dvc.stage.exceptions import StageCmdFailedError

        exc = record.exc_info[1] if record.exc_info else None
        while exc is not None:
            if isinstance(exc, ReproductionError) and (found := re.search(r"failed to reproduce '([^']+)'", str(exc))):
                self.stage = found.group(1)
            if isinstance(exc, StageCmdFailedError) and (found := re.search(r"exited with (-?\d+)$", str(exc))):
                self.code = int(found.group(1))
            exc = exc.__cause__

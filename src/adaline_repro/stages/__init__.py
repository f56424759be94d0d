"""The pipeline's stages, one module each (fetch, prepare, train, evaluate, compare, track): what dvc.yaml's
commands run. Each module holds its stage's computation (`write_outputs`, which the sweep's trials also call,
in-process) and its command line (`main`). `./pipeline stage <name> ...` runs `python -m
adaline_repro.stages.<name>`: a process that imports only what that stage needs, and notes how it ended for
the run that started DVC (core/run_env.py).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

from adaline_repro.core import run_env
from adaline_repro.core.errors import EXIT_BUG, EXIT_INTERRUPTED, exit_code_of, report_process

# The path arguments several stages share: each backend's result folders, and what an execution logs.
RESULTS = ("models", "curves", "predictions", "metrics")
LOGGED = ("raw", "train", "test", "figure", "marker")
say = partial(print, flush=True)  # flushed: whoever reads the pipe (a test, a terminal) sees each line at once


def parser(name: str, description: str, *paths: str) -> argparse.ArgumentParser:
    """A stage's arguments: --params, and every path dvc.yaml passes it."""
    found = argparse.ArgumentParser(prog=f"./pipeline stage {name}", description=description)
    found.add_argument("--params", type=Path, default=Path("params.yaml"))
    for path in paths:
        found.add_argument(f"--{path}", type=Path, required=True)
    return found


def run_stage(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """A stage command's process: its exit code (one `error:` line for our errors, a traceback for a bug),
    noted with its start for the run that started DVC."""
    report_process()
    run_env.started()
    code = EXIT_BUG
    try:
        code = exit_code_of(lambda: main(argv))
    except SystemExit as exc:  # SIGTERM, or argparse refusing the arguments
        code = exc.code if isinstance(exc.code, int) else 1
        raise
    except KeyboardInterrupt:  # Ctrl-C: 128 + SIGINT, as a shell reports it
        code = EXIT_INTERRUPTED
        raise
    finally:
        run_env.ended(code)
    return code

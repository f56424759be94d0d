"""What a Ray worker process runs for one trial: check that its kernels are the driver's, then the trial.

Ray starts its worker processes itself and reuses them from task to task. The CPU pins reach them as
`runtime_env` variables (sweep/cluster.py), set before the process starts, so MKL reads them; the package's
import would set them too late for a process where torch is already loaded. Each task fixes torch's thread
count again, since Ray sets OMP_NUM_THREADS to each task's CPU allotment and a reused process keeps
whatever an earlier task built. Then the worker compares its fingerprint (the check's probe: MKL's CNR
branch and threads, ATen's capability, the library versions) with the driver's, on the keys that can change
bytes, and refuses to run a trial when one differs: a trial from a worker without the pins is never
silently mixed in.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import resource
import socket

from adaline_repro.core import cpu_pins
from adaline_repro.core.checkout import PipelinePaths
from adaline_repro.dvc_support.overrides import Overrides
from adaline_repro.sweep import trial
from adaline_repro.sweep.grid import Trial
from adaline_repro.sweep.trial import TrialRecord

_reported: list[bool] = []  # whether this process has sent its fingerprint


@functools.cache
def kernels() -> dict:
    """This process's fingerprint, probed once (MKL prints its header on the first verbose call only)."""
    from adaline_repro.ops.fingerprint import fingerprint

    return fingerprint()


def refusals(reference: dict, mine: dict) -> list[str]:
    """The differences between the driver's fingerprint and this worker's that can change result bytes."""
    from adaline_repro.ops.fingerprint import differences

    return [str(d) for d in differences(reference, mine) if d.explains_bytes]


def task(overrides: tuple[str, ...], applied: Overrides, paths: PipelinePaths, reference: dict) -> TrialRecord:
    """One trial's record, with where it ran; or its refusal, naming what differs, without running it."""
    import torch

    if cpu_pins.enabled():
        torch.set_num_threads(int(cpu_pins.PINS["OMP_NUM_THREADS"]))
    mine = kernels()
    worker = {"host": socket.gethostname(), "pid": os.getpid(), "node": _node_id()}
    if refused := refusals(reference, mine):
        return TrialRecord(Trial(overrides).id, overrides, worker=worker, refused=tuple(refused))
    record = trial.execute(Trial(overrides), applied, paths)
    # The process's peak resident memory so far (kB on Linux): the bench reports memory per worker from it.
    worker["max_rss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    first = not _reported  # once per process: the journal then holds every worker's fingerprint
    if first:
        _reported.append(True)
    return dataclasses.replace(record, worker=worker, fingerprint=mine if first else None)


def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()

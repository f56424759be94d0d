"""`./pipeline sweep`: check the grid, start or join Ray, run every trial not in the journal as a Ray task,
then write the table, the summary and the agreement map, log to MLflow, and verify K trials through DVC.

What a sweep writes lives in sweeps/<key>/ (gitignored), where the key is the digest of everything a
trial's bytes depend on: the grid, params.yaml, dvc.yaml, the lock and every source file. The same command
on the same tree finds its journal there and resumes; a changed tree starts a new folder.
"""

from __future__ import annotations

import hashlib
import random
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from adaline_repro.core.checkout import PipelinePaths, pipeline_paths
from adaline_repro.core.errors import EXIT_BROKEN, EXIT_BUG, EXIT_OK, ReproError
from adaline_repro.core.files import atomic_write_bytes, atomic_write_text, read_json
from adaline_repro.dvc_support.overrides import Overrides
from adaline_repro.sweep import grid, summary, table
from adaline_repro.sweep.grid import Trial
from adaline_repro.sweep.journal import Journal
from adaline_repro.sweep.trial import TrialRecord

if TYPE_CHECKING:
    from adaline_repro.tracking.sweep_runs import SweepWriter

SWEEPS = "sweeps"
_KEYED = ("params.yaml", "dvc.yaml", "requirements.lock")


class WorkerRefused(ReproError):
    """A worker's kernels or libraries differ from the driver's: its trials would not be the same bytes."""

    exit_code = EXIT_BROKEN


@dataclass(frozen=True)
class Options:
    overrides: list[str]  # empty: the committed default sweep (sweep.yaml)
    address: str | None = None  # None: an embedded Ray on this machine
    workers: int | None = None  # embedded Ray's CPUs (default: all)
    verify: int = 0  # re-run this many random trials through DVC and require identical bytes
    verify_seed: int = 0
    log_to_store: bool = True


def sweep_key(root: Path, overrides: list[str]) -> str:
    """The digest of the grid and of every file a trial's bytes depend on."""
    digest = hashlib.sha256("\n".join(overrides).encode())
    files = [root / name for name in _KEYED] + sorted((root / "src").rglob("*.py"))
    for path in files:
        digest.update(f"\0{path.relative_to(root)}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def command(root: Path, options: Options, say: Callable[[str], None]) -> int:
    applied = Overrides((root / "params.yaml").read_text(encoding="utf-8"))
    overrides = options.overrides or grid.default_overrides(root)
    trials = grid.trials(applied, overrides)  # a bad grid is one line, before anything starts
    paths = pipeline_paths(root)
    folder = root / SWEEPS / sweep_key(root, overrides)
    journal = Journal(folder / "journal.jsonl")
    wanted = {t.id for t in trials}
    records = {i: r for i, r in journal.done().items() if i in wanted}
    todo = [t for t in trials if t.id not in records]
    where = journal.path.relative_to(root)
    say(f"sweep: {len(trials)} trials ({len(records)} already in {where}), {len(todo)} to run")
    keys = table.swept_keys(trials)
    writer = _writer(root, applied.base["tracking"]["experiment"], folder.name) if options.log_to_store else None

    def log(trial: Trial, record: TrialRecord) -> None:
        if writer:
            writer.put(*astuple(table.trial_run(trial, record, keys)))

    started = time.monotonic()
    try:
        for trial in trials:
            if trial.id in records:  # journaled by an earlier, interrupted sweep
                log(trial, records[trial.id])
        try:
            records.update(_execute(todo, applied, paths, options, journal, log, say) if todo else {})
        except (KeyboardInterrupt, SystemExit):
            kept = len(set(journal.done()) & wanted)
            say(f"sweep: interrupted: {kept} of {len(trials)} trials are in {where}; the same command resumes there")
            if writer:
                writer.interrupted()
            raise
        results = _write_results(root, folder, trials, records, applied.base, paths)
        counts = table.summary(results)
        say(f"sweep: {counts['agree']} agree, {counts['differ']} differ, {counts['error']} failed of "
            f"{counts['trials']} trials in {time.monotonic() - started:.1f} s; table and agreement map in "
            f"{folder.relative_to(root)}/")  # fmt: skip
        if writer:
            _finish(writer, results, folder, say)
    finally:
        if writer:
            writer.close()
    status = EXIT_BUG if any((r.error or "").startswith("bug:") for r in records.values()) else EXIT_OK
    if options.verify:
        from adaline_repro.sweep import verify

        chosen = random.Random(options.verify_seed).sample(trials, min(options.verify, len(trials)))  # noqa: S311
        status = max(status, verify.verify(root, chosen, records, paths, say))
    return status


def _write_results(
    root: Path, folder: Path, trials: list[Trial], records: dict[str, TrialRecord], raw: dict, paths: PipelinePaths
) -> pd.DataFrame:
    """trials.csv, summary.json, summary.md and agreement.png in the sweep's folder; returns the results frame."""
    from adaline_repro.sweep.figure import agreement_map  # matplotlib: only once the trials are done

    results = table.frame(trials, records)
    keys = table.swept_keys(trials)
    committed = {b: read_json(p) for b in raw["train"]["backends"] if (p := paths.results(root).metric(b)).is_file()}
    atomic_write_text(folder / "trials.csv", table.table_text(results))
    atomic_write_text(folder / "summary.json", table.summary_text(results))
    atomic_write_text(folder / "summary.md", summary.markdown(results, keys, raw, committed))
    atomic_write_bytes(folder / "agreement.png", agreement_map(results, keys))
    return results


def _writer(root: Path, experiment: str, key: str) -> SweepWriter:
    from adaline_repro.core.tracking_uri import tracking_uri
    from adaline_repro.tracking.sweep_runs import SweepWriter  # MLflow: seconds, not paid with --no-log

    return SweepWriter(tracking_uri(root), experiment, key)


def _finish(writer: SweepWriter, results: pd.DataFrame, folder: Path, say: Callable[[str], None]) -> None:
    """The parent's table, figure, files and counts, once the children are in."""
    counts = {k: v for k, v in table.summary(results).items() if isinstance(v, int | float)}
    artifacts = [
        p for p in (folder / n for n in ("agreement.png", "trials.csv", "summary.json", "summary.md")) if p.exists()
    ]
    after = writer.finish(table.columns(results), counts, artifacts)
    say(f"sweep: logged to MLflow (parent run {writer.log.parent}, {writer.log.added} trial runs added): "
        f"{writer.busy:.1f} s of store writes, {after:.1f} s after the trials")  # fmt: skip


def _execute(todo: list[Trial], applied: Overrides, paths: PipelinePaths, options: Options, journal: Journal,
             log: Callable[[Trial, TrialRecord], None], say: Callable) -> dict[str, TrialRecord]:  # fmt: skip
    """Run `todo` as Ray tasks; journal (and log) each result as it arrives. Returns id -> record."""
    from adaline_repro.sweep import cluster, worker

    reference, machine = _start(options)
    try:
        import ray

        say(f"sweep: Ray {'at ' + options.address if options.address else 'on this machine (loopback only)'}: "
            f"{machine.nodes} node(s), {machine.cpus} CPUs, {machine.gpus} GPUs")  # fmt: skip
        task = ray.remote(num_cpus=1, max_retries=3)(worker.task)
        shared = ray.put(applied), ray.put(paths), ray.put(reference)
        pending = {task.options(num_gpus=int(_wants_gpu(applied, t))).remote(t.overrides, *shared): t for t in todo}
        done: dict[str, TrialRecord] = {}
        with _progress(len(todo)) as bar:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=min(len(pending), 32), timeout=0.5)
                batch = [(pending.pop(ref), ray.get(ref)) for ref in ready]
                for _, record in batch:
                    if record.refused:
                        # No ray.cancel of the rest: cancelling while replies arrive trips a check in Ray
                        # 2.60's task manager (a crash, seen here); shutting down ends the job's tasks.
                        raise WorkerRefused(
                            f"sweep: the worker on {record.worker['host']} (node {record.worker['node'][:8]}) "
                            f"differs from this machine: {'; '.join(record.refused)}; its trials were not "
                            f"run, {len(done)} finished trials are in {journal.path}"
                        )
                journal.append([record for _, record in batch])
                for trial, record in batch:
                    done[record.id] = record
                    log(trial, record)
                    bar.update(failed=bool(record.error))
        return done
    finally:
        cluster.stop()


def _start(options: Options) -> tuple[dict, object]:
    """Start or join Ray while probing the driver's own fingerprint, what every worker must match (torch's
    import and Ray's start-up are each about 2 s, mostly waiting on disk and on Ray's processes)."""
    from adaline_repro.sweep import cluster, worker

    probed: list = []  # the fingerprint, or what the probe raised

    def probe() -> None:
        try:
            probed.append(worker.kernels())
        except BaseException as exc:  # re-raised in the driver's thread below
            probed.append(exc)

    probing = threading.Thread(target=probe, name="sweep-fingerprint")
    probing.start()
    try:
        machine = cluster.start(options.address, options.workers)
    finally:
        probing.join()
    if isinstance(probed[0], BaseException):
        cluster.stop()
        raise probed[0]
    return probed[0], machine


def _wants_gpu(applied: Overrides, trial: Trial) -> bool:
    """train.device=cuda trials go to nodes with a GPU; cpu and auto take any."""
    return table.value(applied.params(trial.overrides), "train.device") == "cuda"


class _progress:
    """A bar with trials done, failed and remaining and an ETA on a terminal; silent otherwise."""

    def __init__(self, total: int) -> None:
        from tqdm import tqdm

        self.failed = 0
        self._bar = tqdm(total=total, unit="trial", disable=not sys.stderr.isatty(), file=sys.stderr)

    def __enter__(self) -> _progress:
        return self

    def update(self, failed: bool) -> None:
        self.failed += failed
        self._bar.update(1)
        self._bar.set_postfix(failed=self.failed, refresh=False)

    def __exit__(self, *exc: object) -> None:
        self._bar.close()

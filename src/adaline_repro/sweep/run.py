"""`./pipeline sweep`: check the grid, start or join Ray, run every trial not in the journal as a Ray task,
then write the table, the summary and the agreement map, log to MLflow, and verify K trials through DVC.

What a sweep writes lives in sweeps/<key>/ (gitignored), where the key is the digest of everything a
trial's bytes depend on: the grid, params.yaml, dvc.yaml, the lock and every source file. The same command
on the same tree finds its journal there and resumes; a changed tree starts a new folder.
"""

from __future__ import annotations

import hashlib
import queue
import random
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from adaline_repro.errors import EXIT_BROKEN, EXIT_BUG, EXIT_OK, ReproError
from adaline_repro.files import atomic_write_bytes, atomic_write_text, read_json, safe_yaml
from adaline_repro.paths import PipelinePaths, pipeline_paths
from adaline_repro.sweep import grid, summary, table
from adaline_repro.sweep.grid import Trial
from adaline_repro.sweep.journal import Journal

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
    raw = safe_yaml((root / "params.yaml").read_text(encoding="utf-8"))
    overrides = options.overrides or grid.default_overrides(root)
    trials = grid.trials(raw, overrides)  # a bad grid is one line, before anything starts
    paths = pipeline_paths(root)
    folder = root / SWEEPS / sweep_key(root, overrides)
    journal = Journal(folder / "journal.jsonl")
    wanted = {t.id for t in trials}
    records = {i: r for i, r in journal.done().items() if i in wanted}
    todo = [t for t in trials if t.id not in records]
    say(f"sweep: {len(trials)} trials ({len(records)} already in {journal.path.relative_to(root)}), "
        f"{len(todo)} to run")  # fmt: skip
    # Opened first: a store that does not answer fails the sweep before minutes of trials.
    logging = _Logging(root, raw, folder.name, table.swept_keys(trials)) if options.log_to_store else None
    started = time.monotonic()
    try:
        if logging:
            for trial in trials:
                if trial.id in records:  # journaled by an earlier, interrupted sweep
                    logging.put(trial, records[trial.id])
        if todo:
            try:
                records.update(_execute(todo, raw, paths, options, journal, logging, say))
            except (KeyboardInterrupt, SystemExit):
                kept = len(set(journal.done()) & wanted)
                say(f"sweep: interrupted: {kept} of {len(trials)} trials are in {journal.path.relative_to(root)}; "
                    "the same command resumes there")  # fmt: skip
                if logging:
                    logging.interrupted()
                raise
        elapsed = time.monotonic() - started
        atomic_write_text(folder / "trials.csv", table.table_text(trials, records))
        atomic_write_text(folder / "summary.json", table.summary_text(trials, records))
        atomic_write_text(folder / "summary.md", summary.markdown(trials, records, raw, _committed(root, raw, paths)))
        from adaline_repro.sweep.figure import agreement_map  # matplotlib: only once the trials are done

        atomic_write_bytes(folder / "agreement.png", agreement_map(trials, records))
        counts = table.summary(trials, records)
        say(
            f"sweep: {counts['agree']} agree, {counts['differ']} differ, {counts['error']} failed "
            f"of {counts['trials']} trials in {elapsed:.1f} s; table and agreement map in {folder.relative_to(root)}/"
        )
        if logging:
            logging.finish(trials, records, folder, say)
    finally:
        if logging:
            logging.close()
    status = EXIT_BUG if any(str(r.get("error") or "").startswith("bug:") for r in records.values()) else EXIT_OK
    if options.verify:
        from adaline_repro.sweep import verify

        chosen = random.Random(options.verify_seed).sample(trials, min(options.verify, len(trials)))  # noqa: S311
        status = max(status, verify.verify(root, chosen, records, paths, say))
    return status


def _committed(root: Path, raw: dict, paths: PipelinePaths) -> dict[str, dict]:
    """Each backend's metrics from the checkout's own run (what the summary places among the seeds)."""
    found = {}
    for backend in raw["train"]["backends"]:
        path = paths.results(root).metric(backend)
        if path.is_file():
            found[backend] = read_json(path)
    return found


class _Logging:
    """MLflow logging beside the trials: a thread adds each trial's child run as its record arrives, so the
    store's writes overlap the training instead of following it."""

    def __init__(self, root: Path, raw: dict, key: str, keys: list[str]) -> None:
        from adaline_repro.tracking.sweep_runs import SweepLog
        from adaline_repro.workspace import tracking_uri

        self.log = SweepLog(tracking_uri(root), raw["tracking"]["experiment"], key)
        self.keys = keys
        self.busy = 0.0  # seconds spent writing to the store
        self._queue: queue.Queue = queue.Queue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="sweep-mlflow", daemon=True)
        self._thread.start()

    def put(self, trial: Trial, record: dict) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put((trial, record))

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None:
                started = time.monotonic()
                try:
                    self.log.trial(table.tracked(*item, self.keys))
                except BaseException as exc:  # handed to the driver's thread, raised there
                    self._error = exc
                self.busy += time.monotonic() - started

    def finish(self, trials: list[Trial], records: dict[str, dict], folder: Path, say: Callable) -> None:
        """Wait for the children, then log the parent's table, figure and summary."""
        waited = time.monotonic()
        self._drain()
        waited = time.monotonic() - waited
        started = time.monotonic()
        counts = table.summary(trials, records)
        self.log.finish(
            table.columns(trials, records),
            {k: v for k, v in counts.items() if isinstance(v, int | float)},
            [
                p
                for p in (folder / n for n in ("agreement.png", "trials.csv", "summary.json", "summary.md"))
                if p.exists()
            ],
        )
        self.busy += time.monotonic() - started
        after = waited + time.monotonic() - started
        say(f"sweep: logged to MLflow (parent run {self.log.parent}, {self.log.added} trial runs added): "
            f"{self.busy:.1f} s of store writes, {after:.1f} s after the trials")  # fmt: skip

    def _drain(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def interrupted(self) -> None:
        """Log what arrived, then mark the parent KILLED (a resumed sweep finishes it)."""
        self._drain()
        self.log.interrupted()

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()


def _execute(
    todo: list[Trial],
    raw: dict,
    paths: PipelinePaths,
    options: Options,
    journal: Journal,
    logging: _Logging | None,
    say: Callable,
) -> dict[str, dict]:
    """Run `todo` as Ray tasks; journal (and log) each result as it arrives. Returns id -> record."""
    from adaline_repro.sweep import cluster, worker

    # The driver's own fingerprint, what every worker must match, probed while Ray starts (torch's import
    # and Ray's start-up are each about 2 s, mostly waiting on disk and on Ray's processes).
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
    reference = probed[0]
    try:
        import ray

        say(f"sweep: Ray {'at ' + options.address if options.address else 'on this machine (loopback only)'}: "
            f"{machine.nodes} node(s), {machine.cpus} CPUs, {machine.gpus} GPUs")  # fmt: skip
        task = ray.remote(num_cpus=1, max_retries=3)(worker.run)
        shared = ray.put(raw), ray.put(paths), ray.put(reference)
        pending = {task.options(num_gpus=1 if _wants_gpu(raw, t) else 0).remote(t.overrides, *shared): t for t in todo}
        done: dict[str, dict] = {}
        with _progress(len(todo)) as bar:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=min(len(pending), 32), timeout=0.5)
                batch = []
                for ref in ready:
                    trial = pending.pop(ref)
                    record = ray.get(ref)
                    if record.get("refused"):
                        # No ray.cancel of the rest: cancelling while replies arrive trips a check in Ray
                        # 2.60's task manager (a crash, seen here); shutting down ends the job's tasks.
                        raise WorkerRefused(
                            f"sweep: the worker on {record['worker']['host']} (node {record['worker']['node'][:8]}) "
                            f"differs from this machine: {'; '.join(record['refused'])}; its trials were not "
                            f"run, {len(done)} finished trials are in {journal.path}"
                        )
                    batch.append((trial, record))
                journal.append([record for _, record in batch])
                for trial, record in batch:
                    done[record["id"]] = record
                    if logging:
                        logging.put(trial, record)
                    bar.update(1)
                    if record.get("error"):
                        bar.failed += 1
        return done
    finally:
        cluster.stop()


def _wants_gpu(raw: dict, trial: Trial) -> bool:
    """train.device=cuda trials go to nodes with a GPU; cpu and auto take any."""
    device = raw.get("train", {}).get("device")
    for override in trial.overrides:
        if override.split("=", 1)[0].strip() == "train.device":
            device = override.split("=", 1)[1].strip()
    return device == "cuda"


class _progress:
    """A bar with trials done, failed and remaining and an ETA on a terminal; silent otherwise."""

    def __init__(self, total: int) -> None:
        from tqdm import tqdm

        self.failed = 0
        self._bar = tqdm(total=total, unit="trial", disable=not sys.stderr.isatty(), file=sys.stderr)

    def __enter__(self) -> _progress:
        return self

    def update(self, n: int) -> None:
        self._bar.update(n)
        self._bar.set_postfix(failed=self.failed, refresh=False)

    def __exit__(self, *exc: object) -> None:
        self._bar.close()

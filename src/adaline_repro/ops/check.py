"""`./pipeline check`: re-run everything in a scratch copy; fail when backends differ or results drift."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from adaline_repro import divergence, dvc_internals
from adaline_repro.agreement import BackendOutputs, PairResult, compare_pair, load_outputs
from adaline_repro.errors import EXIT_BROKEN, EXIT_DIFFER, EXIT_DRIFT, EXIT_OK, EXIT_STALE, InputError
from adaline_repro.files import atomic_write_bytes, atomic_write_text, json_text, read_json
from adaline_repro.ops.byte_diff import FirstDifference, differing_files
from adaline_repro.ops.check_report import DRIFT, IDENTICAL, STATUS, WITHIN_TOLERANCE, DeviceRun, report
from adaline_repro.ops.fingerprint import Difference, differences, fingerprint
from adaline_repro.ops.worktree import copy_worktree
from adaline_repro.params import CompareParams, Params, load_params
from adaline_repro.paths import PipelinePaths, pipeline_paths
from adaline_repro.replay import Lecture

if TYPE_CHECKING:
    from adaline_repro.repro.run_lock import Run

# The check's own outputs (not pipeline outputs: dvc.yaml does not know them).
ENVIRONMENT = "reports/environment.json"
REPORT_JSON, REPORT_MD = "reports/check.json", "reports/check.md"


class CheckError(InputError):
    """The check cannot run as asked."""

    def __init__(self, message: str) -> None:
        super().__init__(f"check: {message}")


def stale_reasons(repo: Path, env: dict[str, str]) -> list[str]:
    """What `dvc status` says changed in params or code without dvc.lock following, one line each."""
    done = subprocess.run(["dvc", "status", "--json"], cwd=repo, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise CheckError(f"dvc status failed: {done.stderr.strip()}")
    return dvc_internals.stale_reasons(json.loads(done.stdout or "{}"))


def _set_device(params_yaml: Path, device: str) -> None:
    text = params_yaml.read_text(encoding="utf-8")
    new, count = re.subn(r"(?m)^(\s+device:\s*)\S+", rf"\g<1>{device}", text)
    if count != 1:
        raise CheckError(f"{params_yaml}: expected one train.device line, found {count}")
    params_yaml.write_text(new, encoding="utf-8")


def compared_paths(paths: PipelinePaths) -> tuple[str, ...]:
    """What a fresh run is compared on, and what --update rewrites: every result and report, and dvc.lock."""
    return (*paths.result_folders, *paths.reports, "dvc.lock")


def load_results(root: Path, paths: PipelinePaths, backends: tuple[str, ...]) -> list[BackendOutputs]:
    return [load_outputs(b, paths.results(root)) for b in backends]


def run_device(scratch: Path, device: str, env: dict[str, str], params: Params, paths: PipelinePaths) -> DeviceRun:
    """`./pipeline repro --force` in the scratch copy with train.device set; its results kept aside."""
    _set_device(scratch / "params.yaml", device)
    # The compare report counts only if this run's compare wrote it: a copy from before would outlive a
    # run that stopped earlier (./pipeline repro puts the outputs back when a stage other than compare fails).
    (scratch / paths.compare_json).unlink(missing_ok=True)
    done = subprocess.run(["./pipeline", "repro", "--force"], cwd=scratch, env=env, capture_output=True, text=True)
    log = (done.stdout + done.stderr)[-4000:]
    reached_compare = done.returncode in (EXIT_OK, EXIT_DIFFER) and (scratch / paths.compare_json).exists()
    passed = read_json(scratch / paths.compare_json)["passed"] if reached_compare else None
    run = DeviceRun(device, done.returncode, passed, log)
    if not run.broken:
        keep = scratch / ".check" / device
        for rel in compared_paths(paths):
            if (scratch / rel).exists():
                target = keep / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                (shutil.copytree if (scratch / rel).is_dir() else shutil.copy2)(scratch / rel, target)
        run.results_root = keep
        run.train = scratch / paths.train
        run.results = load_results(keep, paths, params.train.backends)
    return run


def drift(reference: list[BackendOutputs], fresh: list[BackendOutputs], tol: CompareParams) -> list[PairResult]:
    """Each backend against its own committed self: floats within tolerance, the rest exactly."""
    return [compare_pair(ref, new, tol) for ref, new in zip(reference, fresh, strict=True)]


def divergences(
    reference: list[BackendOutputs],
    fresh: list[BackendOutputs],
    names: tuple[str, str],
    tol: CompareParams,
    lecture: Lecture | None = None,
) -> dict[str, dict | None]:
    """Each backend's first update step at which its two records part (None: never), by the locator compare
    uses across backends; `names` label the two records in the explanation."""
    found = {}
    for ref, new in zip(reference, fresh, strict=True):
        records = dict(zip(names, (ref.steps, new.steps), strict=True))
        located = divergence.first_divergence(records, tol, lecture)
        found[ref.backend] = None if located is None else located.as_dict()
    return found


def result_files(paths: PipelinePaths, *roots: Path) -> list[str]:
    """The files of compared_paths below any of `roots`, relative to it, in that order (dvc.lock last)."""
    names: dict[str, None] = {}
    for rel in compared_paths(paths):
        found = {str(p.relative_to(r)) for r in roots for p in [r / rel, *(r / rel).rglob("*")] if p.is_file()}
        names.update(dict.fromkeys(sorted(found)))
    return list(names)


def explanations(run_device: str, reference_device: str | None, env_diffs: list[Difference]) -> list[str]:
    """What makes other bytes expected: another device than the committed results', or a fingerprint
    difference that the CPU pins cannot cover (architecture, library versions, the pins themselves)."""
    reasons = []
    if reference_device is not None and run_device != reference_device:
        reasons.append(f"device: committed results from {reference_device}, this run on {run_device}")
    return reasons + [str(d) for d in env_diffs if d.explains_bytes]


def outcome(byte_differences: list[FirstDifference], explained_by: list[str], drift: list[PairResult]) -> str:
    """IDENTICAL for the same bytes; other bytes are WITHIN_TOLERANCE only when something explains them and
    every value is within the compare tolerances; else DRIFT."""
    if not byte_differences:
        return IDENTICAL
    if explained_by and all(p.passed for p in drift):
        return WITHIN_TOLERANCE
    return DRIFT


def exit_code(runs: list[DeviceRun], cross: list[PairResult]) -> int:
    if any(r.broken for r in runs):
        return EXIT_BROKEN
    if any(r.compare_passed is False for r in runs) or not all(p.passed for p in cross):
        return EXIT_DIFFER
    if any(r.outcome == DRIFT for r in runs):
        return EXIT_DRIFT
    return EXIT_OK


def update_reference(repo: Path, paths: PipelinePaths, run: DeviceRun, env_now: dict, lock: Run) -> list[str]:
    """Copy a fresh run's results over the committed ones; the files whose bytes changed.

    Under the run lock and a rollback snapshot: a copy that fails (a full disk) or a kill puts every file
    back, so the committed results are never half old and half new."""
    from adaline_repro.repro import rollback

    source = run.results_root
    lock.took(rollback.take(repo, extra=(ENVIRONMENT,)))
    changed = []
    try:
        for rel in compared_paths(paths):
            src = source / rel
            files = sorted(p for p in src.rglob("*") if p.is_file()) if src.is_dir() else [src]
            for path in files:
                target = repo / path.relative_to(source)
                data = path.read_bytes()
                if not target.exists() or target.read_bytes() != data:
                    changed.append(str(path.relative_to(source)))
                    atomic_write_bytes(target, data)
        atomic_write_text(repo / ENVIRONMENT, json_text(env_now))
    except BaseException:
        lock.put_back()
        raise
    lock.keep()
    return changed


def judge(
    repo: Path,
    run: DeviceRun,
    reference: list[BackendOutputs],
    env_diffs: list[Difference],
    params: Params,
    paths: PipelinePaths,
) -> None:
    """A fresh run's results (kept in run.results_root) against the committed ones in `repo`: what moved
    beyond the tolerances, from which update step, which files have other bytes, whether anything explains
    them, and so the outcome."""
    run.drift = drift(reference, run.results, params.compare)
    lecture = Lecture(run.train, params.train.lr) if run.train else None
    run.divergences = divergences(reference, run.results, ("committed", "fresh"), params.compare, lecture)
    run.byte_differences = differing_files(repo, run.results_root, result_files(paths, repo, run.results_root))
    run.lock_identical = all(d.file != "dvc.lock" for d in run.byte_differences)
    run.explained_by = explanations(run.results[0].device, reference[0].device, env_diffs)
    run.outcome = outcome(run.byte_differences, run.explained_by, run.drift)


def scratch_env(scratch: Path, repo: Path, log_to_store: bool) -> dict[str, str]:
    from adaline_repro.workspace import tracking_uri

    env = {**os.environ, "ADALINE_VENV": os.environ.get("ADALINE_VENV", str(repo / ".venv"))}
    env.pop("DVC_ROOT", None)
    env["MLFLOW_TRACKING_URI"] = tracking_uri(repo) if log_to_store else f"sqlite:///{scratch}/mlflow.db"
    return env


def new_scratch(repo: Path) -> Path:
    return copy_worktree(repo, Path(tempfile.mkdtemp(prefix="adaline-check-")))


def run_check(
    repo: Path,
    params: Params,
    devices: list[str],
    *,
    update: Run | None = None,
    keep: bool = False,
    log_to_store: bool = False,
    say: Callable[[str], None] = print,
) -> int:
    """The whole check; writes reports/check.{json,md} in `repo` and returns the exit code. With `update`
    (the run lock's handle, held by the caller) it rewrites the committed results from the fresh run."""
    paths = pipeline_paths(repo)
    scratch = new_scratch(repo)
    env = scratch_env(scratch, repo, log_to_store)
    try:
        stale = [] if update else stale_reasons(repo, env)
        env_now = fingerprint()
        if "cuda" in devices and not env_now["cuda"]["available"]:
            raise CheckError("--devices asks for cuda, but no CUDA device is available")
        env_file = repo / ENVIRONMENT
        env_ref = read_json(env_file) if env_file.exists() else None
        runs: list[DeviceRun] = []
        cross: list[PairResult] = []
        cross_divergences: dict[str, dict | None] = {}
        if not stale:
            reference = load_results(repo, paths, params.train.backends)
            env_diffs = differences(env_ref, env_now) if env_ref else []
            for device in devices:
                say(f"check: running the pipeline from scratch on {device} in {scratch}")
                run = run_device(scratch, device, env, params, paths)
                if run.results:
                    judge(repo, run, reference, env_diffs, params, paths)
                runs.append(run)
            if len(runs) == 2 and all(r.results for r in runs):
                cross = drift(runs[0].results, runs[1].results, params.compare)
                names = (runs[0].device, runs[1].device)
                if names[0] == names[1]:
                    names = (f"{names[0]} 1", f"{names[1]} 2")
                lecture = Lecture(runs[0].train, params.train.lr) if runs[0].train else None
                cross_divergences = divergences(runs[0].results, runs[1].results, names, params.compare, lecture)
        code = EXIT_STALE if stale else exit_code(runs, cross)
        if update and code in (EXIT_OK, EXIT_DRIFT):
            changed = update_reference(repo, paths, runs[0], env_now, update)
            say(f"check --update: {len(changed)} committed files rewritten" + "".join(f"\n  {c}" for c in changed))
            code = EXIT_OK
        data, text = report(code, stale, runs, cross, cross_divergences, env_ref, env_now)
        atomic_write_text(repo / REPORT_JSON, json_text(data))
        atomic_write_text(repo / REPORT_MD, text)
        say(text)
        say(f"check: {STATUS[code]} (exit {code}); report in {REPORT_MD}")
        return code
    finally:
        if keep:
            say(f"check: scratch copy kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


def parse_devices(text: str) -> list[str]:
    """`cpu`, `cuda`, `auto` or two of them, comma-separated."""
    devices = [d.strip() for d in text.split(",") if d.strip()]
    if not devices or len(devices) > 2 or set(devices) - {"cpu", "cuda", "auto"}:
        raise CheckError("--devices takes one or two of cpu, cuda, auto (comma-separated)")
    return devices


def command(
    params_yaml: Path,
    devices: str | None,
    *,
    update: bool,
    wait: bool,
    keep: bool,
    log_to_store: bool,
    say: Callable[[str], None],
) -> int:
    """`./pipeline check`: the devices default to train.device from params.yaml. With --update it holds the
    checkout for its whole run, as ./pipeline repro does."""
    from adaline_repro.workspace import repository_root

    params = load_params(params_yaml)
    repo = repository_root()
    options = {"keep": keep, "log_to_store": log_to_store, "say": say}
    if not update:
        return run_check(repo, params, parse_devices(devices or params.train.device), **options)
    from adaline_repro.repro import run_lock

    command_line = "./pipeline check --update" + (f" --devices {devices}" if devices else "")
    warn = partial(print, file=sys.stderr, flush=True)
    with run_lock.hold(repo, command_line, wait=wait, say=warn) as lock:
        return run_check(repo, params, parse_devices(devices or params.train.device), update=lock, **options)

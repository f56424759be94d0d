"""`./pipeline check`: re-run everything in a scratch copy; fail when backends differ or results drift.

The run happens in a scratch copy of the checkout (what a fresh clone would hold) with a throw-away store;
check_findings.py judges it against the committed results and writes reports/check.{json,md}. With
--update the committed results are rewritten from the fresh run, holding the checkout as repro does."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from adaline_repro.comparison import BackendOutputs, Divergence, Lecture, PairResult, load_outputs
from adaline_repro.core.checkout import PipelinePaths, pipeline_paths, repository_root
from adaline_repro.core.errors import EXIT_BROKEN, EXIT_DIFFER, EXIT_DRIFT, EXIT_OK, EXIT_STALE, InputError, StoreError
from adaline_repro.core.files import atomic_write_bytes, atomic_write_text, json_text, read_json
from adaline_repro.core.params import Params, load_params
from adaline_repro.dvc_support import internals
from adaline_repro.ops import upgrade as upgrades
from adaline_repro.ops.check_findings import DeviceRun, compared_paths, divergences, drift, exit_code, judge
from adaline_repro.ops.check_report import STATUS, check_run, install_report, report, title
from adaline_repro.ops.fingerprint import differences, fingerprint
from adaline_repro.ops.scratch import new_scratch, scratch_env
from adaline_repro.ops.upgrade import ScratchVenv
from adaline_repro.ops.versions import Change, InstallFailed
from adaline_repro.repro.checkout_run import CheckoutRun

# The check's own outputs (not pipeline outputs: dvc.yaml does not know them).
ENVIRONMENT = "reports/environment.json"
REPORT_JSON, REPORT_MD = "reports/check.json", "reports/check.md"


class CheckError(InputError):
    """The check cannot run as asked."""

    def __init__(self, message: str) -> None:
        super().__init__(f"check: {message}")


def stale_reasons(repo: Path) -> list[str]:
    """What `dvc status` says changed in params or code without dvc.lock following, one line each."""
    env = {k: v for k, v in os.environ.items() if k != "DVC_ROOT"}
    done = subprocess.run(["dvc", "status", "--json"], cwd=repo, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise CheckError(f"dvc status failed: {done.stderr.strip()}")
    return internals.stale_reasons(json.loads(done.stdout or "{}"))


def _set_device(params_yaml: Path, device: str) -> None:
    text = params_yaml.read_text(encoding="utf-8")
    new, count = re.subn(r"(?m)^(\s+device:\s*)\S+", rf"\g<1>{device}", text)
    if count != 1:
        raise CheckError(f"{params_yaml}: expected one train.device line, found {count}")
    params_yaml.write_text(new, encoding="utf-8")


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
    compared = read_json(scratch / paths.compare_json) if reached_compare else {}
    run = DeviceRun(device, done.returncode, compared.get("passed"), log)
    run.follows_lecture = compared.get("follows_lecture")
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


def update_reference(repo: Path, paths: PipelinePaths, run: DeviceRun, env_now: dict, held: CheckoutRun) -> list[str]:
    """Copy a fresh run's results over the committed ones; the files whose bytes changed. Under a snapshot
    of the checkout: a copy that fails (a full disk) or a kill puts every file back, so the committed
    results are never half old and half new."""
    source = run.results_root
    held.snapshot(extra=(ENVIRONMENT,))
    changed = []
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
    held.keep()
    return changed


def run_check(
    repo: Path,
    params: Params,
    devices: list[str],
    *,
    update: CheckoutRun | None = None,
    keep: bool = False,
    log_to_store: bool = False,
    say: Callable[[str], None] = print,
    specs: tuple[str, ...] = (),
) -> int:
    """The whole check; writes reports/check.{json,md} in `repo` and returns the exit code. With `update`
    (the checkout, held by the caller) it rewrites the committed results from the fresh run. With `specs`
    (check --with) the scratch copy runs in the venv of those versions, built after the staleness is asked
    (it takes minutes); an install that fails, or a venv whose libraries do not run, is a broken check with
    its line and the versions resolved; the verdict is logged to the store."""
    paths = pipeline_paths(repo)
    stale = [] if update else stale_reasons(repo)
    upgrade = None
    if specs and not stale:
        try:
            upgrade = upgrades.prepare(repo, list(specs), say)
            env_now = upgrades.environment(upgrade)
        except InstallFailed as failed:
            data, text = install_report(specs, failed)
            return _conclude(repo, params, EXIT_BROKEN, data, text, say, specs, failed.changes)
    else:
        env_now = fingerprint()
    if "cuda" in devices and not env_now["cuda"]["available"]:
        raise CheckError("--devices asks for cuda, but no CUDA device is available")
    env_ref = read_json(repo / ENVIRONMENT) if (repo / ENVIRONMENT).exists() else None
    runs = [] if stale else _run_devices(repo, params, devices, env_ref, env_now, upgrade, log_to_store, keep, say)
    cross, cross_divergences = _across_devices(runs, params)
    code = EXIT_STALE if stale else exit_code(runs, cross)
    if update and code in (EXIT_OK, EXIT_DRIFT):
        changed = update_reference(repo, paths, runs[0], env_now, update)
        say(f"check --update: {len(changed)} committed files rewritten" + "".join(f"\n  {c}" for c in changed))
        code = EXIT_OK
    data, text = report(code, stale, runs, cross, cross_divergences, env_ref, env_now, specs, upgrade)
    return _conclude(repo, params, code, data, text, say, specs, upgrade.changes if upgrade else (), runs)


def _run_devices(
    repo: Path,
    params: Params,
    devices: list[str],
    env_ref: dict | None,
    env_now: dict,
    upgrade: ScratchVenv | None,
    log_to_store: bool,
    keep: bool,
    say: Callable[[str], None],
) -> list[DeviceRun]:
    """The pipeline from scratch on each device, in one scratch copy (in `upgrade`'s venv, when given), each
    run judged against the committed results."""
    paths = pipeline_paths(repo)
    scratch = new_scratch(repo)
    env = scratch_env(scratch, repo, log_to_store, upgrade.path if upgrade else None)
    versions = [str(c) for c in upgrade.changes] if upgrade else []
    try:
        reference = load_results(repo, paths, params.train.backends)
        env_diffs = differences(env_ref, env_now) if env_ref else []
        runs = []
        for device in devices:
            say(f"check: running the pipeline from scratch on {device} in {scratch}")
            run = run_device(scratch, device, env, params, paths)
            if run.results:
                judge(repo, run, reference, env_diffs, params, paths, versions)
            runs.append(run)
        return runs
    finally:
        if keep:
            say(f"check: scratch copy kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


def _conclude(
    repo: Path,
    params: Params,
    code: int,
    data: dict,
    text: str,
    say: Callable[[str], None],
    specs: tuple[str, ...],
    changes: tuple[Change, ...] = (),
    runs: Sequence[DeviceRun] = (),
) -> int:
    """Write the reports, say them; a check --with also logs its verdict, with its versions, to the store
    (a store that fails is said in one line and leaves the verdict's exit code as it is)."""
    atomic_write_text(repo / REPORT_JSON, json_text(data))
    atomic_write_text(repo / REPORT_MD, text)
    say(text)
    if specs:
        from adaline_repro.core.tracking_uri import tracking_uri
        from adaline_repro.tracking import check_runs

        experiment = check_runs.experiment_name(params.tracking.experiment)
        try:
            logged = check_run(code, specs, changes, runs, {"check.md": text, "check.json": json_text(data)})
            run_id = check_runs.log_check(tracking_uri(repo), experiment, logged)
            say(f"check: logged to MLflow as run {run_id} (experiment {experiment})")
        except StoreError as exc:
            say(f"check: not logged to MLflow: {exc}")
    say(f"check{title(specs)}: {STATUS[code]} (exit {code}); report in {REPORT_MD}")
    return code


def _across_devices(runs: list[DeviceRun], params: Params) -> tuple[list[PairResult], dict[str, Divergence | None]]:
    """Two device runs held against each other, backend by backend, and where each backend's records part."""
    if len(runs) != 2 or not all(r.results for r in runs):
        return [], {}
    names = (runs[0].device, runs[1].device)
    if names[0] == names[1]:
        names = (f"{names[0]} 1", f"{names[1]} 2")
    lecture = Lecture.read(runs[0].train, params.train.lr) if runs[0].train else None
    found = divergences(runs[0].results, runs[1].results, names, params.compare, lecture)
    return drift(runs[0].results, runs[1].results, params.compare), found


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
    with_specs: list[str] | None = None,
) -> int:
    """`./pipeline check`: the devices default to train.device from params.yaml. With --update it holds the
    checkout for its whole run, as ./pipeline repro does; --with runs under other versions (run_check)."""
    params = load_params(params_yaml)
    repo = repository_root()
    chosen = parse_devices(devices or params.train.device)
    if with_specs and update:
        raise CheckError("--with compares other versions with the committed results; it never rewrites them")
    if with_specs:
        specs = tuple(with_specs)
        return run_check(repo, params, chosen, keep=keep, log_to_store=log_to_store, say=say, specs=specs)
    if not update:
        return run_check(repo, params, chosen, keep=keep, log_to_store=log_to_store, say=say)
    command_line = "./pipeline check --update" + (f" --devices {devices}" if devices else "")
    with CheckoutRun(repo, command_line, wait=wait) as held:
        return run_check(repo, params, chosen, update=held, keep=keep, log_to_store=log_to_store, say=say)

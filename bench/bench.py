"""Benchmarks of the pipeline against a single script, interleaved (A B A B ...) on one machine.

Run with `./pipeline bench [--reps N] [--only cold,noop,...]`. Each scenario works in a scratch copy of
the repository with its own MLflow store; results go to stdout and bench/results.json. Never a timed
assertion: these are measurements to read, not tests.

Over 300 lines on purpose: one function per scenario, each standing alone, and `main` choosing among them;
what they share is in harness.py.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO)]

from bench import sweep  # noqa: E402
from bench.harness import Workspace, baseline_workspace, interleave, ratio, summary  # noqa: E402

from adaline_repro.core import cpu_pins  # noqa: E402
from adaline_repro.ops.postgres import free_port  # noqa: E402

SCRIPT = REPO / "bench" / "single_script.py"
SCENARIOS = (
    "cold", "noop", "incremental", "epochs", "sweep", "server", "step", "memory", "pins", "backend", "record"
)  # fmt: skip


def bench_cold(ws: Workspace, reps: int, baseline: Workspace | None = None) -> dict:
    """`dvc repro --force` against the script, and the floor a stage per backend allows, in the same run:
    the script, plus one `import torch` and DVC's cost per stage for each train stage past the first.
    DVC's cost per stage is the cold run less its stage processes (each timed as DVC runs it), per stage.
    With a baseline workspace (--baseline REV), its cold run too."""
    script = [sys.executable, str(SCRIPT)]
    commands = _stage_commands(ws.root)
    trains = sum(name.startswith("train@") for name in commands)

    def stages() -> float:
        (ws.root / ".tracking" / "logged.json").unlink(missing_ok=True)  # as DVC does before track runs
        return sum(ws.run(["bash", "-c", cmd], dvc_root=True) for cmd in commands.values())

    t = interleave(
        reps,
        pipeline=lambda: ws.run(["dvc", "repro", "--force"]),
        script=lambda: ws.run(script),
        script_no_mlflow=lambda: ws.run([*script, "--no-mlflow"]),
        import_torch=lambda: ws.run([sys.executable, "-c", "import torch"]),
        stage_processes=stages,
        **({"baseline": lambda: baseline.run(["dvc", "repro", "--force"])} if baseline else {}),
    )
    dvc_per_stage = [(p - s) / len(commands) for p, s in zip(t["pipeline"], t["stage_processes"], strict=True)]
    floor = [
        script + (trains - 1) * (torch + dvc)
        for script, torch, dvc in zip(t["script"], t["import_torch"], dvc_per_stage, strict=True)
    ]
    return {
        **{k: summary(v) for k, v in t.items()},
        "dvc_per_stage": summary(dvc_per_stage),
        "floor": summary(floor),
        "ratio_vs_script": ratio(t["pipeline"], t["script"]),
        "ratio_vs_script_no_mlflow": ratio(t["pipeline"], t["script_no_mlflow"]),
        "ratio_vs_floor": ratio(t["pipeline"], floor),
        **({"baseline_ratio_vs_script": ratio(t["baseline"], t["script"])} if baseline else {}),
    }


def bench_backend(ws: Workspace, reps: int, baseline: Workspace | None = None) -> dict:
    """A change to one backend's module alone (manual.py, then module.py), then `./pipeline repro`: here only
    that backend's train stage re-runs. With a baseline workspace (--baseline REV), the same change there,
    interleaved (A B A B)."""
    workspaces = {"pipeline": ws, **({"baseline": baseline} if baseline else {})}
    out = {}
    for backend in ("manual", "module"):
        state = dict.fromkeys(workspaces, 0)

        def change(name: str, backend: str = backend, state: dict = state) -> float:
            state[name] += 1
            source = workspaces[name].root / "src" / "adaline_repro" / "backends" / f"{backend}.py"
            text = source.read_text().removesuffix("# bench\n")
            source.write_text(text + ("# bench\n" if state[name] % 2 else ""))  # each run a real change
            return workspaces[name].run(["./pipeline", "repro"])

        t = interleave(reps, **{name: (lambda n=name: change(n)) for name in workspaces})
        out[backend] = {k: summary(v) for k, v in t.items()}
        if "baseline" in t:
            out[backend]["pipeline_over_baseline"] = ratio(t["pipeline"], t["baseline"])
    return out


def bench_noop(ws: Workspace, reps: int) -> dict:
    """`./pipeline repro` with nothing changed (its shortcut), and plain `dvc repro`, against the script."""
    t = interleave(
        reps,
        pipeline=lambda: ws.run(["./pipeline", "repro"]),
        dvc_repro=lambda: ws.run(["dvc", "repro"]),
        script=lambda: ws.run([sys.executable, str(SCRIPT)]),
    )
    return {
        **{k: summary(v) for k, v in t.items()},
        "speedup_vs_script": ratio(t["script"], t["pipeline"]),
        "dvc_repro_speedup_vs_script": ratio(t["script"], t["dvc_repro"]),
    }


def bench_incremental(ws: Workspace, reps: int) -> dict:
    """Only the tolerances changed (compare alone re-runs); only the learning rate (fetch and prepare do not).

    The learning-rate case is held against a cold run minus the stages it skips, measured here too.
    """
    state = {"atol": 0, "lr": 0}
    commands = _stage_commands(ws.root)

    def tolerance() -> float:
        state["atol"] += 1
        ws.set_param("atol", "1.1e-7" if state["atol"] % 2 else "1.0e-7")  # each run a real change
        return ws.run(["./pipeline", "repro"])

    def learning_rate() -> float:
        state["lr"] += 1
        ws.set_param("lr", "0.011" if state["lr"] % 2 else "0.01")
        return ws.run(["./pipeline", "repro"])

    def skipped() -> float:  # what lr-only does not re-run, as DVC runs it
        return sum(ws.run(["bash", "-c", commands[stage]], dvc_root=True) for stage in ("fetch", "prepare"))

    t = interleave(
        reps,
        tolerance_only=tolerance,
        lr_only=learning_rate,
        cold=lambda: ws.run(["dvc", "repro", "--force"]),
        fetch_and_prepare=skipped,
    )
    ws.set_param("atol", "1.0e-7")
    ws.set_param("lr", "0.01")
    ws.run(["./pipeline", "repro"])
    out = {k: summary(v) for k, v in t.items()}
    out["lr_only_target"] = out["cold"]["median"] - out["fetch_and_prepare"]["median"]
    return out


def bench_epochs(ws: Workspace, reps: int) -> dict:
    """The whole pipeline, and the track stage's own process (drawing and logging), at 20 / 200 / 2,000 epochs."""
    track = _stage_commands(ws.root)["track"]
    marker = ws.root / ".tracking" / "logged.json"

    def track_stage() -> float:
        marker.unlink(missing_ok=True)  # as DVC does before running the stage
        return ws.run(["bash", "-c", track], dvc_root=True)

    out = {}
    for epochs in (20, 200, 2000):
        ws.set_param("epochs", str(epochs))
        ws.run(["./pipeline", "repro"])
        out[str(epochs)] = {
            "pipeline_force": summary([ws.run(["dvc", "repro", "--force"]) for _ in range(reps)]),
            "track_stage": summary([track_stage() for _ in range(reps)]),
        }
    ws.set_param("epochs", "20")
    ws.run(["./pipeline", "repro"])
    out["logging_2000_over_20"] = out["2000"]["track_stage"]["median"] / out["20"]["track_stage"]["median"]
    return out


def bench_record(ws: Workspace, reps: int, baseline: Workspace | None = None) -> dict:
    """What the per-update step record costs: cold `dvc repro --force` and the train stages' own processes
    at 20 and 2,000 epochs, interleaved with the same in the --baseline REV workspace, and the records' size."""
    from adaline_repro.core.checkout import pipeline_paths

    spaces = {"pipeline": ws, **({"baseline": baseline} if baseline else {})}
    out = {}
    for epochs in (20, 2000):
        runs: dict[str, Callable[[], float]] = {}
        for name, space in spaces.items():
            space.set_param("epochs", str(epochs))
            space.run(["./pipeline", "repro"])
            trains = [cmd for stage, cmd in _stage_commands(space.root).items() if stage.startswith("train@")]
            runs[f"{name}_cold"] = lambda space=space: space.run(["dvc", "repro", "--force"])
            runs[f"{name}_train_stages"] = lambda space=space, trains=trains: sum(
                space.run(["bash", "-c", cmd], dvc_root=True) for cmd in trains
            )
        t = interleave(reps, **runs)
        records = sorted((ws.root / pipeline_paths(ws.root).steps).glob("*.csv"))
        out[str(epochs)] = {
            **{k: summary(v) for k, v in t.items()},
            "record_bytes": {p.name: p.stat().st_size for p in records},
            **(
                {
                    "cold_over_baseline": ratio(t["pipeline_cold"], t["baseline_cold"]),
                    "train_stages_over_baseline": ratio(t["pipeline_train_stages"], t["baseline_train_stages"]),
                }
                if baseline
                else {}
            ),
        }
    for space in spaces.values():
        space.set_param("epochs", "20")
        space.run(["./pipeline", "repro"])
    return out


def bench_sweep(ws: Workspace, reps: int) -> dict:
    """The default sweep (sweep.yaml) three ways, side by side: the floor (the same trials in one plain loop:
    no Ray, no MLflow, no files), `./pipeline sweep` on 1 and on 2 workers with MLflow logging to the
    embedded store (and 2 without), then 8 experiments queued with `dvc exp run --queue` on 2 workers."""
    from bench.sweep_floor import floor

    out: dict = {"floor": floor(ws.root)}
    for name, args in (("workers_1", ["--workers", "1"]), ("workers_2", ["--workers", "2"]),
                       ("workers_2_no_mlflow", ["--workers", "2", "--no-log"])):  # fmt: skip
        shutil.rmtree(ws.root / "sweeps", ignore_errors=True)
        out[name] = _ray_sweep(ws, args)
    cold = [ws.run(["dvc", "repro", "--force"]) for _ in range(reps)]
    queue = _queue_of_eight(ws, ws.env, "sweep", 1000)
    out["queue"] = {**queue, "cold": summary(cold),
                    "per_experiment_over_cold": queue["per_experiment_s"] / statistics.median(cold)}  # fmt: skip
    per_trial = out["workers_2"]["wall_s"] / out["floor"]["trials"]
    out["workers_2_over_floor"] = out["workers_2"]["wall_s"] / out["floor"]["wall_s"]
    # What logging adds to the wall time (it runs beside the trials, so its own seconds overlap them).
    out["mlflow_share_of_wall"] = 1 - out["workers_2_no_mlflow"]["wall_s"] / out["workers_2"]["wall_s"]
    out["queue_per_experiment_over_sweep_per_trial"] = queue["per_experiment_s"] / per_trial
    return out


def _ray_sweep(ws: Workspace, args: list[str]) -> dict:
    """One `./pipeline sweep` of the default grid: its wall time, its own timings and each worker's memory."""
    store = Path(tempfile.mkdtemp(prefix="adaline-bench-store-"))  # a new store: every trial is logged
    env = {**ws.env, "MLFLOW_TRACKING_URI": f"sqlite:///{store}/mlflow.db"}
    started = time.perf_counter()
    done = subprocess.run(["./pipeline", "sweep", *args], cwd=ws.root, env=env, capture_output=True, text=True,
                          check=True)  # fmt: skip
    shutil.rmtree(store, ignore_errors=True)
    wall = time.perf_counter() - started
    (journal,) = (ws.root / "sweeps").glob("*/journal.jsonl")
    peak: dict[int, int] = {}
    for line in journal.read_text().splitlines():
        worker = json.loads(line)["worker"]
        peak[worker["pid"]] = max(peak.get(worker["pid"], 0), worker["max_rss_kb"])
    logged = re.search(r"([\d.]+) s of store writes, ([\d.]+) s after the trials", done.stdout)
    return {
        "wall_s": wall,
        "trials_s": float(re.search(r"trials in ([\d.]+) s", done.stdout)[1]),
        "mlflow_writes_s": float(logged[1]) if logged else None,
        "mlflow_after_trials_s": float(logged[2]) if logged else None,
        "worker_peak_rss_mb": sorted(round(kb / 1024) for kb in peak.values()),
        "last_line": done.stdout.strip().splitlines()[-1],
    }


def _queue_of_eight(ws: Workspace, env: dict, prefix: str, first_seed: int) -> dict:
    """Queue 8 seeds, run them with 2 workers, count what reached env's store."""
    import mlflow

    names = [f"{prefix}-{i}" for i in range(8)]
    sweep.enqueue(ws.root, env, {name: [f"train.seed={first_seed + i}"] for i, name in enumerate(names)})
    result = sweep.run(ws.root, env, names, jobs=2, timeout_s=1800)
    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("adaline-backends")
    runs = client.search_runs([experiment.experiment_id], max_results=1000) if experiment else []
    return {
        "experiments": len(names),
        "succeeded": len(result.succeeded),
        "ended": result.ended,
        "mlflow_runs_logged": sum(1 for r in runs if r.data.tags.get("dvc.exp_name") in names),  # 4 each
        "wall_s": result.wall_s,
        "per_experiment_s": result.wall_s / len(names),
    }


def bench_server(ws: Workspace, reps: int) -> dict:
    """Logging through `./pipeline server` (MLflow on its own PostgreSQL) against the embedded store: the
    track stage's own process, interleaved, then the 8-experiment queue against each."""
    state = Path(tempfile.mkdtemp(prefix="adaline-bench-server-"))
    state.chmod(0o755)  # PostgreSQL's own user must reach it when we are root
    port = free_port()
    server = subprocess.Popen(
        ["./pipeline", "server", "--folder", str(state), "--port", str(port)], cwd=ws.root, env=ws.env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        for line in server.stdout:
            if line.startswith("export MLFLOW_TRACKING_URI="):
                uri = line.strip().split("=", 1)[1]
                break
        else:
            raise RuntimeError(f"./pipeline server exited {server.wait()} before printing its URI")
        remote = {**ws.env, "MLFLOW_TRACKING_URI": uri}
        track = _stage_commands(ws.root)["track"]
        marker = ws.root / ".tracking" / "logged.json"

        def track_stage(env: dict) -> float:
            marker.unlink(missing_ok=True)  # as DVC does before running the stage
            return ws.run(["bash", "-c", track], dvc_root=True, env=env)

        track_stage(remote)  # the server's first request creates the experiment: not part of the measure
        t = interleave(reps, embedded=lambda: track_stage(ws.env), server=lambda: track_stage(remote))
        out = {f"track_stage_{k}": summary(v) for k, v in t.items()}
        out["track_stage_server_over_embedded"] = ratio(t["server"], t["embedded"])
        out["queue_embedded"] = _queue_of_eight(ws, ws.env, "embedded", 2000)
        out["queue_server"] = _queue_of_eight(ws, remote, "server", 3000)
        return out
    finally:
        os.killpg(server.pid, signal.SIGINT)
        server.wait(timeout=120)
        shutil.rmtree(state, ignore_errors=True)


def bench_step(reps: int) -> dict:
    """Microseconds per minibatch step, the project's backends against the script's loop, in one process."""
    import torch

    sys.path.insert(0, str(SCRIPT.parent))
    import single_script

    from adaline_repro import backends
    from adaline_repro.stages.train import shuffle_orders

    x_train, _, y_train, _ = single_script.load()
    y = y_train.float()
    epochs = 200
    out = {}
    for name in ("manual", "autograd", "module"):
        ours, theirs = [], []
        for _ in range(reps):
            backend = backends.get(name)(2, 0.01, torch.float32, torch.device("cpu"))
            orders = shuffle_orders(70, epochs, 123)
            start, steps = time.perf_counter(), 0
            for order in orders:
                for batch in torch.split(order, 10):
                    backend.step(x_train[batch], y[batch])
                    steps += 1
            ours.append(1e6 * (time.perf_counter() - start) / steps)
            _, _, step_s, n = single_script.train(name, x_train, y_train, epochs, 0.01, 123)
            theirs.append(1e6 * step_s / n)
        out[name] = {"pipeline_us": summary(ours), "script_us": summary(theirs), "ratio": ratio(ours, theirs)}
    return out


def bench_pins(ws: Workspace, reps: int) -> dict:
    """The train stages' own processes as DVC runs them, one after the other, with the CPU pins and without
    (ADALINE_CPU_PINS=off and none of the pinned variables set), interleaved, at 20 and 2,000 epochs."""
    train = " && ".join(cmd for name, cmd in _stage_commands(ws.root).items() if name.startswith("train@"))
    unpinned = {k: v for k, v in ws.env.items() if k not in cpu_pins.PINS}
    unpinned[cpu_pins.SWITCH] = cpu_pins.OFF
    out = {}
    for epochs in (20, 2000):
        ws.set_param("epochs", str(epochs))
        ws.run(["./pipeline", "repro"])
        t = interleave(
            reps,
            pinned=lambda: ws.run(["bash", "-c", train], dvc_root=True),
            unpinned=lambda: ws.run(["bash", "-c", train], dvc_root=True, env=unpinned),
        )
        out[str(epochs)] = {**{k: summary(v) for k, v in t.items()}, "pinned_over_unpinned": ratio(*t.values())}
    ws.set_param("epochs", "20")
    ws.run(["./pipeline", "repro"])
    return out


def _stage_commands(root: Path) -> dict[str, str]:
    """Stage name -> command, as DVC resolves dvc.yaml (train@<backend> for each of train.backends)."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return {stage.name: stage.cmd for stage in repo.index.stages}


def bench_memory(ws: Workspace) -> dict:
    """Peak RSS (MB) of each stage's own process, run as DVC would run it."""
    probe = (
        "import resource, subprocess, sys; "
        "rc = subprocess.run(sys.argv[1], shell=True, stdout=subprocess.DEVNULL).returncode; "
        "print(rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = {}
    for stage, cmd in _stage_commands(ws.root).items():
        done = subprocess.run(
            [sys.executable, "-c", probe, cmd], cwd=ws.root, env=ws.env, capture_output=True, text=True
        )
        rc, kb = done.stdout.split()
        out[stage] = {"peak_rss_mb": int(kb) / 1024, "returncode": int(rc)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--only", default=",".join(SCENARIOS))
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results.json")
    parser.add_argument("--baseline", metavar="REV", help="cold, backend, record: also measure the repository at REV")
    args = parser.parse_args()
    wanted = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(wanted) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}; known: {', '.join(SCENARIOS)}")
    results: dict = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d"),
        "reps": args.reps,
    }
    ws = Workspace()
    baseline = baseline_workspace(args.baseline) if args.baseline else None
    try:
        for name in wanted:
            print(f"bench: {name} ...", file=sys.stderr, flush=True)
            if name == "step":
                results[name] = bench_step(args.reps)
            elif name in ("cold", "backend", "record"):
                results[name] = globals()[f"bench_{name}"](ws, args.reps, baseline)
            elif name == "memory":
                results[name] = bench_memory(ws)
            else:
                results[name] = globals()[f"bench_{name}"](ws, args.reps)
            print(json.dumps({name: results[name]}, indent=1), flush=True)
    finally:
        ws.close()
        if baseline:
            baseline.close()
    args.out.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    print(f"bench: results in {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()

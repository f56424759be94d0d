"""Where the trials run: an embedded Ray on this machine, listening on loopback only, or a cluster joined by
address (`--address` / RAY_ADDRESS).

Embedded, Ray would register the node at the host's primary address and bind its servers there, unless
its single-machine mode is on (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, the switch Ray itself uses on Windows
and macOS, read when ray is imported: services.get_node_ip_address then answers 127.0.0.1). With it, and
no node address given, every listener is on 127.0.0.1
(tests/e2e/test_ray_sweep.py lists them). The dashboard is off. Token authentication is set explicitly:
on for the embedded instance (Ray makes its token), and for a cluster whatever RAY_AUTH_MODE the caller and
the cluster's nodes agree on (docs/sweep.md).

Every worker gets the CPU pins through `runtime_env` `env_vars`, so they are in its environment before
its process starts; a cluster's workers also get this checkout's package (`py_modules`), so a node runs
the driver's code, and the driver refuses a node whose fingerprint differs (sweep/worker.py).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from adaline_repro.core import cpu_pins
from adaline_repro.core.errors import EXIT_BROKEN, ReproError

SINGLE_MACHINE = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
AUTH_MODE = "RAY_AUTH_MODE"


class ClusterError(ReproError):
    """Ray could not be started or joined."""

    exit_code = EXIT_BROKEN


@dataclass(frozen=True)
class Cluster:
    address: str | None  # None: the embedded one-machine instance
    cpus: int
    gpus: int
    nodes: int


def runtime_env(address: str | None) -> dict:
    """What every worker process starts with: the pins (unless switched off here), and on a cluster, the
    package."""
    env_vars = dict(cpu_pins.PINS) if cpu_pins.enabled() else {cpu_pins.SWITCH: cpu_pins.OFF}
    runtime: dict = {"env_vars": env_vars}
    if address is not None:
        runtime["py_modules"] = [str(Path(__file__).resolve().parents[1])]
    return runtime


def start(address: str | None, workers: int | None) -> Cluster:
    """Start the embedded Ray (`workers` CPUs, default all) or join the cluster at `address`."""
    if address is None:
        os.environ.update(SINGLE_MACHINE)  # before ray is imported: it reads the switch at import
        os.environ.setdefault(AUTH_MODE, "token")
    import ray

    options = {
        "runtime_env": runtime_env(address),
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": logging.WARNING,
    }
    try:
        if address is None:
            ray.init(num_cpus=workers or os.cpu_count(), **options)
        else:
            ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "an embedded Ray"
        raise ClusterError(f"sweep: cannot start {where}: {str(exc).splitlines()[0]}") from None
    resources = ray.cluster_resources()
    return Cluster(
        address=address,
        cpus=int(resources.get("CPU", 0)),
        gpus=int(resources.get("GPU", 0)),
        nodes=sum(1 for n in ray.nodes() if n.get("Alive")),
    )


def stop() -> None:
    import ray

    ray.shutdown()

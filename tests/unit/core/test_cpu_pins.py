"""The CPU pins: set on import of the package, before torch; a differing value is replaced out loud;
ADALINE_CPU_PINS=off leaves the environment alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from adaline_repro.core import cpu_pins
from tests.conftest import REPO


def test_apply_sets_every_pin_and_names_each_value_it_replaced():
    """A user's MKL_CBWR=AVX2 becomes COMPATIBLE and is reported; equal values are not."""
    environ = {"MKL_CBWR": "AVX2", "OMP_NUM_THREADS": "1", "HOME": "/home/user"}
    replaced = cpu_pins.apply(environ)
    assert replaced == ["MKL_CBWR=AVX2 -> COMPATIBLE"]
    assert environ == {**cpu_pins.PINS, "HOME": "/home/user"}


def test_off_leaves_the_environment_as_it_is_and_says_so():
    environ = {cpu_pins.SWITCH: "off", "MKL_CBWR": "AVX2"}
    assert cpu_pins.apply(environ) == []
    assert environ == {cpu_pins.SWITCH: "off", "MKL_CBWR": "AVX2"}
    configured = cpu_pins.configured(environ)
    assert configured["enabled"] is False
    assert configured["environment"]["MKL_CBWR"] == "AVX2"
    assert configured["environment"]["ATEN_CPU_CAPABILITY"] is None


def _import_package(env: dict) -> subprocess.CompletedProcess:
    code = "import json, os, adaline_repro; print(json.dumps({k: os.environ.get(k) for k in sorted(os.environ)}))"
    env = {**env, "PYTHONPATH": str(REPO / "src")}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)


def test_importing_the_package_pins_the_process_and_warns_about_a_replaced_value():
    """Every process that imports adaline_repro (stages, tests, the check) runs pinned; no silent override."""
    env = {k: v for k, v in os.environ.items() if k not in cpu_pins.PINS and k != cpu_pins.SWITCH}
    done = _import_package({**env, "ATEN_CPU_CAPABILITY": "avx512"})
    seen = json.loads(done.stdout)
    assert {k: seen[k] for k in cpu_pins.PINS} == cpu_pins.PINS
    assert done.stderr.strip() == (
        "CPU pin: ATEN_CPU_CAPABILITY=avx512 -> avx2 (set ADALINE_CPU_PINS=off to keep your value)"
    )


def test_switched_off_the_package_import_changes_nothing():
    env = {k: v for k, v in os.environ.items() if k not in cpu_pins.PINS}
    done = _import_package({**env, cpu_pins.SWITCH: "off"})
    assert not set(cpu_pins.PINS) & set(json.loads(done.stdout))
    assert done.stderr == ""

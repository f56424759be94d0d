"""`./pipeline ui` in a real browser: Debian's Chromium, driven by Playwright, opens the printed compare
link and finds the three backend runs, their shared parameters and the train_mse chart, and opens the
printed sweep link to a parallel-coordinates plot of every trial over the swept values and agreement."""

from __future__ import annotations

import re
import socket
import time

import pytest
from playwright.sync_api import sync_playwright

from tests.conftest import CHROMIUM, CHROMIUM_FLAGS, Background, free_port, port_open, run_cmd
from tests.e2e.conftest import copy_of

READY_TIMEOUT_S = 240
RUNS = ("manual@cpu", "autograd@cpu", "module@cpu")
SWEPT = ("train.lr", "train.batch_size", "prepare.seed")
SWEEP = [a for key, values in zip(SWEPT, ("0.01,1.0", "7,35", "1,2"), strict=True) for a in ("-S", f"{key}={values}")]


@pytest.fixture(scope="module")
def logged(first_repro, tmp_path_factory):
    """A fresh clone whose own store holds one pipeline execution and one sweep of 8 trials."""
    root, env = copy_of(first_repro, tmp_path_factory.mktemp("ui"))
    run_cmd(["./pipeline", "sweep", *SWEEP], root, env)
    return root, env


# The compare view's parallel-coordinates plot as Plotly holds it: each axis's label and values.
AXES = "() => document.querySelector('.js-plotly-plot').data[0].dimensions.map(d => [d.label, d.values])"


def test_compare_view_shows_the_backends_and_the_sweep_s_parallel_coordinates_in_chromium(logged, tmp_path):
    root, env = logged
    ui = Background(["./pipeline", "ui", "--port", str(port := free_port())], root, env)
    started = time.monotonic()
    try:
        compare = ui.wait_for("compare view: ", READY_TIMEOUT_S).removeprefix("compare view: ")
        ready = time.monotonic() - started
        assert compare.startswith(f"http://127.0.0.1:{port}/#/compare-runs?")
        experiment = ui.wait_for("experiment: ", 1).split()[-1]
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
            try:
                page = browser.new_page(viewport={"width": 1600, "height": 1400})
                page.goto(compare, wait_until="domcontentloaded")
                for run in RUNS:
                    page.get_by_text(run, exact=True).first.wait_for(timeout=60_000)
                for row in ("train.lr", "train.epochs", "train.batch_size", "train_accuracy", "test_accuracy"):
                    page.get_by_text(row, exact=True).first.wait_for(timeout=30_000)
                page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
                page.screenshot(path=tmp_path / "compare.png")
                # As a person would: the metric's name in the compare view opens its chart over epochs.
                page.get_by_role("link", name="train_mse", exact=True).click()
                page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
                for run in RUNS:  # the chart's legend: one curve per backend run
                    page.get_by_text(f"{run} (train_mse)", exact=True).first.wait_for(timeout=30_000)
                page.screenshot(path=tmp_path / "train_mse.png")
                page.goto(experiment, wait_until="domcontentloaded")
                # The parent run's name carries the verdict, first thing in the runs table.
                page.get_by_text(re.compile(r"^pipeline: passed \(max diff \de-0[78]\)$")).first.wait_for(
                    timeout=60_000
                )
                page.screenshot(path=tmp_path / "experiment.png")
                # The sweep's trials: one line per trial across the swept values, coloured by agreement.
                page.goto(
                    ui.wait_for("sweep trials: ", 1).removeprefix("sweep trials: "), wait_until="domcontentloaded"
                )
                page.get_by_text("Comparing 8 Runs").first.wait_for(timeout=60_000)
                page.get_by_text("Parallel Coordinates Plot", exact=True).first.wait_for(timeout=30_000)
                page.locator(".js-plotly-plot .parcoords").first.wait_for(timeout=60_000)
                axes = dict(page.evaluate(AXES))
                assert list(axes) == [*sorted(SWEPT), "agree"], axes
                assert all(len(values) == 8 for values in axes.values()), axes
                assert sorted(axes["agree"]) == [0] * 4 + [1] * 4  # 4 agree; 2 differ and 2 fail
                page.screenshot(path=tmp_path / "sweep.png")
            finally:
                browser.close()
        print(f"ui ready after {ready:.1f} s; screenshots in {tmp_path}")
    finally:
        code = ui.interrupt()
    assert code == 0, "\n".join(ui.lines)
    assert not port_open(port), "the MLflow server outlived ./pipeline ui"


def test_port_in_use_is_a_clear_error(logged):
    root, env = logged
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_cmd(["./pipeline", "ui", "--port", str(port)], root, env, check=False)
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: ui: port {port} on 127.0.0.1 is already in use; choose another with --port"

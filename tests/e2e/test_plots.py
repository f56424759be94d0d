"""`./pipeline dvc plots show` offline, in a real browser: the page DVC writes carries Vega, Vega-Lite and
vega-embed itself, so in Chromium with every request but file:// refused, both charts draw (the three
loss curves in one, a line per backend pair of per-step differences in the other) and the figure shows."""

from __future__ import annotations

import json
import re

from playwright.sync_api import sync_playwright

from tests.conftest import CHROMIUM, CHROMIUM_FLAGS, PATHS, make_clone, run_cmd

# The colours drawn on a chart's canvas that are neither white, black nor grey: one hue per line.
HUES = """(selector) => {
  const canvas = document.querySelector(selector + ' canvas');
  if (!canvas) return null;
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  const hues = new Set();
  for (let i = 0; i < data.length; i += 4) {
    const [r, g, b] = [data[i], data[i + 1], data[i + 2]];
    if (Math.max(r, g, b) - Math.min(r, g, b) > 60) hues.add(`${r >> 5},${g >> 5},${b >> 5}`);
  }
  return {width: canvas.width, height: canvas.height, hues: hues.size};
}"""


def test_dvc_plots_show_draws_both_charts_and_the_figure_with_no_network(tmp_path_factory, tmp_path):
    root, env = make_clone(tmp_path_factory)  # the charts' data are committed: no run needed
    done = run_cmd(["./pipeline", "dvc", "plots", "show"], root, env)
    page_file = root / "dvc_plots" / "index.html"
    assert done.stdout.strip().endswith(page_file.as_uri())
    html = page_file.read_text()
    assert "cdn.jsdelivr" not in html
    assert "<script src=" not in html
    assert run_cmd(["git", "status", "--porcelain"], root, env).stdout == "", "dvc_plots/ or the page is not ignored"
    charts = [f"#{re.sub(r'[^A-Za-z0-9]', '_', path)}" for path in (PATHS.loss_plot, PATHS.diff_plot)]
    refused, errors = [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            page.route(re.compile(r"^(?!file:).*"), lambda route: (refused.append(route.request.url), route.abort()))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(page_file.as_uri(), wait_until="load")
            for chart in charts:
                page.wait_for_selector(f"{chart} canvas", timeout=30_000)
            drawn = {chart: page.evaluate(HUES, chart) for chart in charts}
            figure = page.evaluate(
                "() => [...document.images].map(i => [i.getAttribute('src').slice(0, 22), i.naturalWidth])"
            )
            page.screenshot(path=tmp_path / "plots.png", full_page=True)
        finally:
            browser.close()
    print(f"screenshot: {tmp_path / 'plots.png'}; {json.dumps(drawn)}")
    assert refused == []
    assert errors == []
    for chart in charts:
        assert drawn[chart]["width"] > 300
        assert drawn[chart]["height"] > 200
        assert drawn[chart]["hues"] >= 3, f"{chart}: a line per backend (or pair) expected, {drawn[chart]}"
    (figure,) = figure  # reports/loss_curves.png, copied beside the page
    assert figure[1] > 0

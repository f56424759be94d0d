"""The offline plots page: the three libraries inline from their pinned tarballs (never a CDN tag), a page
DVC accepts as its template, and a tarball that is not the pinned one refused."""

from __future__ import annotations

import http.server
import threading

import pytest
from dvc_render.html import HTML

from adaline_repro.dvc_support import plots_page
from adaline_repro.dvc_support.plots_page import PACKAGES, PlotsPageError
from tests.conftest import free_port


def test_the_page_carries_each_library_and_dvc_fills_it(tmp_path):
    """From the venv's cache (./pipeline's set-up fetched it): DVC's placeholders for the charts, none for
    its CDN scripts, and each pinned build inline."""
    path = plots_page.ensure(tmp_path)
    page = path.read_text()
    assert path == tmp_path / plots_page.PAGE
    assert "{plot_divs}" in page
    assert "{scripts}" not in page
    assert "<script src=" not in page
    for package in PACKAGES:
        assert f"<!-- {package.name}@{package.version} " in page
    assert 'var e="5.20.2"' in page  # vega's own version string, from inside its build
    filled = HTML(page).with_element("<div id='chart'></div>").embed()
    assert "<div id='chart'></div>" in filled
    assert "{plot_divs}" not in filled
    mtime = path.stat().st_mtime_ns
    plots_page.ensure(tmp_path)
    assert path.stat().st_mtime_ns == mtime, "an up-to-date page is left alone"


def test_a_tarball_that_is_not_the_pinned_one_is_refused(tmp_path, monkeypatch):
    class Wrong(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"not vega")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", free_port()), Wrong)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setattr(plots_page, "REGISTRY", f"http://127.0.0.1:{server.server_port}")
        (tmp_path / PACKAGES[0].tarball).write_bytes(b"a tampered cache")
        with pytest.raises(PlotsPageError, match=r"vega-5\.20\.2\.tgz: does not match its pinned integrity sha512-"):
            plots_page.tarball(PACKAGES[0], tmp_path)
        assert (tmp_path / PACKAGES[0].tarball).read_bytes() == b"a tampered cache"  # nothing replaced
    finally:
        server.shutdown()


def test_no_registry_is_one_line_naming_the_url(tmp_path, monkeypatch):
    monkeypatch.setattr(plots_page, "REGISTRY", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(PlotsPageError, match=r"^cannot fetch http://127\.0\.0\.1:\d+/vega/-/vega-5\.20\.2\.tgz \("):
        plots_page.tarball(PACKAGES[0], tmp_path)

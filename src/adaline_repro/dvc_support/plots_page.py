"""The HTML page `dvc plots show` fills, with Vega, Vega-Lite and vega-embed inside it, so the charts draw
without network.

DVC's own page loads the three libraries from a CDN (dvc_render's VegaRenderer.SCRIPTS), so offline its
charts stay blank. `.dvc/config` points `plots.html_template` at PAGE instead: DVC puts its charts into the
`{plot_divs}` placeholder and, as the page has no `{scripts}` one, leaves the CDN tags out.

The libraries are the npm registry's packages, the versions dvc_render's tags name (so DVC's templates get
the Vega-Lite they were written for), each tarball checked against the registry's sha512 integrity pinned
below. They are downloaded once into the venv (`share/adaline-npm`) when `./pipeline` sets it up, and the
page is written from there whenever it is missing or was made from other versions.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from adaline_repro.core.errors import InputError, WriteError
from adaline_repro.core.files import atomic_write_bytes, atomic_write_text

REGISTRY = "https://registry.npmjs.org"
PAGE = Path(".dvc/plots/offline.html")  # relative to the repository root; .dvc/config names it


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    integrity: str  # the registry's `dist.integrity` of the tarball
    script: str  # the self-contained browser build inside it

    @property
    def tarball(self) -> str:
        return f"{self.name}-{self.version}.tgz"

    @property
    def url(self) -> str:
        return f"{REGISTRY}/{self.name}/-/{self.tarball}"


_SHA512 = {  # the registry's dist.integrity of each tarball
    "vega": "qmH7aD9GGPpssVdxL1xgcdxTbQzyRUeRR16Os385ymvQhiwCYQNA6+eXUPAZDTVLfk0RXu6Jzj6kUE5jQ80EVw==",
    "vega-lite": "Yxcg8MvYfxHcG6BbkaKT0oVCIMIcE19UvqIsEwBmyd/7h2nzW7oRnID81T8UrY7hpDrIr6wa2JADOT2dhGNErw==",
    "vega-embed": "wcDyQPE4J5aiCDc3/suH5RQDvrKkjuLkhzUcbOLwEkNF8/+pp17tS0JghzEvAPNRg+5aG1/N2ydixq8Lk3dOlg==",
}
PACKAGES = tuple(
    Package(name, version, f"sha512-{_SHA512[name]}", f"package/build/{name}.min.js")
    for name, version in (("vega", "5.20.2"), ("vega-lite", "5.2.0"), ("vega-embed", "6.18.2"))
)

_STAMP = "<!-- adaline-repro offline plots page: {} -->"
_HEAD = """<!DOCTYPE html>
<html>
<head>
    {stamp}
    {{refresh_tag}}
    <meta charset="utf-8">
    <title>DVC Plot</title>
{scripts}
    <style>
        table {{
            border-spacing: 15px;
        }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""


class PlotsPageError(InputError):
    """The libraries could not be fetched or did not match their pinned hashes."""


def cache_dir() -> Path:
    """Where the tarballs are kept: inside the venv, shared by the checkouts that use it."""
    return Path(sys.prefix) / "share" / "adaline-npm"


def stamp() -> str:
    return _STAMP.format(", ".join(f"{p.name}@{p.version}" for p in PACKAGES))


def _matches(data: bytes, integrity: str) -> bool:
    import base64
    import hashlib

    algorithm, _, digest = integrity.partition("-")
    return base64.b64encode(hashlib.new(algorithm, data).digest()).decode() == digest


def tarball(package: Package, cache: Path, timeout_s: float = 60.0) -> bytes:
    """The package's tarball, from the cache or else the registry; its integrity always checked."""
    import urllib.request  # here: ./pipeline repro checks for the page on its quick path

    path = cache / package.tarball
    if path.exists() and _matches(data := path.read_bytes(), package.integrity):
        return data
    try:
        with urllib.request.urlopen(package.url, timeout=timeout_s) as response:  # noqa: S310 (https only)
            data = response.read()
    except OSError as exc:
        raise PlotsPageError(
            f"cannot fetch {package.url} ({getattr(exc, 'reason', exc)}): the offline plots page needs it once"
        ) from None
    if not _matches(data, package.integrity):
        raise PlotsPageError(f"{package.url}: does not match its pinned integrity {package.integrity}")
    atomic_write_bytes(path, data)
    return data


def script(package: Package, data: bytes) -> str:
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        member = archive.extractfile(package.script)
        if member is None:
            raise PlotsPageError(f"{package.tarball}: has no {package.script}")
        text = member.read().decode("utf-8")
    # Inline in <script>: a literal "</script" would end the element early (none of the pinned builds has one).
    return text.replace("</script", "<\\/script")


def page(cache: Path) -> str:
    """The whole template: DVC's page layout with the three libraries inline."""
    scripts = "\n".join(
        f"    <!-- {p.name}@{p.version} ({p.script}) -->\n    <script>{script(p, tarball(p, cache))}</script>"
        for p in PACKAGES
    )
    return _HEAD.format(stamp=stamp(), scripts=scripts)


def ensure_quietly(root: Path, say: Callable[[str], None]) -> None:
    """ensure(), for commands other than plots show: a page that cannot be made is said, not fatal (a bare
    `dvc plots show` would otherwise take the missing path for the page's text)."""
    try:
        ensure(root)
    except (PlotsPageError, WriteError) as exc:
        say(f"note: the offline plots page is missing: {exc}")


def ensure(root: Path, cache: Path | None = None) -> Path:
    """Write PAGE under `root` unless it is there and made from these versions; returns its path."""
    path = root / PAGE
    if path.exists():
        with path.open(encoding="utf-8") as f:
            if stamp() in f.read(4096):
                return path
    atomic_write_text(path, page(cache or cache_dir()))
    return path


def prefetch(cache: Path | None = None) -> None:
    """Download the tarballs into the venv (set-up time, while the network is at hand)."""
    for package in PACKAGES:
        tarball(package, cache or cache_dir())


if __name__ == "__main__":  # `python -m adaline_repro.dvc_support.plots_page`: ./pipeline's set-up
    try:
        prefetch()
    except PlotsPageError as exc:
        sys.exit(f"pipeline: {exc}")

"""Fetch: the bundled copy by default, a local UCI file as alternative, and sha256 always enforced."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from adaline_repro.core.files import sha256_file
from adaline_repro.core.params import FetchParams, load_params
from adaline_repro.stages.fetch import RAW_HEADER, FetchError, fetch
from tests.conftest import REPO


def _uci_file(tmp_path: Path) -> Path:
    """The bundled table rewritten in UCI's iris.data format (no header, Iris-<species>, trailing blank line)."""
    text = fetch(load_params(REPO / "params.yaml").fetch)
    rows = list(csv.reader(io.StringIO(text)))[1:]
    path = tmp_path / "iris.data"
    path.write_text("".join(",".join([*r[:4], f"Iris-{r[4]}"]) + "\n" for r in rows) + "\n")
    return path


def test_default_source_is_the_bundled_copy(params):
    """150 rows, four features and the species name, setosa first, as the dataset orders them."""
    rows = list(csv.reader(io.StringIO(fetch(params.fetch))))
    assert tuple(rows[0]) == RAW_HEADER
    assert len(rows) == 151
    assert rows[1] == ["5.1", "3.5", "1.4", "0.2", "setosa"]
    assert [r[4] for r in rows[1:]] == ["setosa"] * 50 + ["versicolor"] * 50 + ["virginica"] * 50


def test_local_uci_file_gives_the_same_table(tmp_path, params):
    """A local iris.data in UCI format yields the same raw CSV as the bundled copy."""
    path = _uci_file(tmp_path)
    local = FetchParams(source="path", location=str(path), sha256=sha256_file(path))
    assert fetch(local) == fetch(params.fetch)


def test_sha256_mismatch_is_an_error(tmp_path):
    path = _uci_file(tmp_path)
    wrong = FetchParams(source="path", location=str(path), sha256="0" * 64)
    with pytest.raises(FetchError, match=r"sha256 mismatch: expected fetch\.sha256=0{64}, got [0-9a-f]{64}"):
        fetch(wrong)


def test_malformed_row_is_reported_with_its_line(tmp_path):
    path = _uci_file(tmp_path)
    lines = path.read_text().splitlines()
    lines[6] = "5.4,abc,1.7,0.4,Iris-setosa"
    path.write_text("\n".join(lines))
    with pytest.raises(FetchError, match=r"line 7: sepal_width is not a number \('abc'\)"):
        fetch(FetchParams(source="path", location=str(path), sha256=sha256_file(path)))


def test_truncated_file_is_reported(tmp_path):
    path = _uci_file(tmp_path)
    path.write_text("\n".join(path.read_text().splitlines()[:120]))
    with pytest.raises(FetchError, match="expected 150 rows, found 120"):
        fetch(FetchParams(source="path", location=str(path), sha256=sha256_file(path)))


@pytest.fixture
def https_server(tmp_path, monkeypatch):
    """A real HTTPS server on 127.0.0.1 serving iris.data, with a self-signed certificate the client trusts."""
    import datetime
    import http.server
    import ipaddress
    import ssl
    import threading

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    served = tmp_path / "www"
    served.mkdir()
    _uci_file(served)
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(served))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/iris.data", served / "iris.data"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_https_source_downloads_and_checks_the_sha256(https_server, params):
    """An https URL to a UCI iris.data gives the same table; its sha256 is checked like any source."""
    url, served = https_server
    assert fetch(FetchParams(source="url", location=url, sha256=sha256_file(served))) == fetch(params.fetch)
    with pytest.raises(FetchError, match="sha256 mismatch"):
        fetch(FetchParams(source="url", location=url, sha256="f" * 64))


def test_fetch_command_writes_nothing_on_mismatch(tmp_path, capsys):
    """The stage exits 2 with one line and leaves no output file behind."""
    from adaline_repro.cli import main

    params = tmp_path / "params.yaml"
    params.write_text((REPO / "params.yaml").read_text().replace("sha256: f13f", "sha256: 013f"))
    out = tmp_path / "raw" / "iris.csv"
    assert main(["stage", "fetch", "--params", str(params), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert "sha256 mismatch: expected fetch.sha256=013f" in err
    assert err.count("\n") == 1
    assert not out.exists()

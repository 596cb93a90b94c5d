"""`sentinel enroll`: signed enrollment requests, the authority's registry, POST on loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sentinel import enroll
from sentinel.cli import main
from sentinel.enroll import EnrollmentError

NOW = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


def test_request_round_trip_is_deterministic() -> None:
    key = Ed25519PrivateKey.generate()
    a = enroll.make_request(key, "hall.g1", "hall", "g1")
    assert a == enroll.make_request(key, "hall.g1", "hall", "g1")
    e = enroll.verify_request(a)
    assert (e.device_id, e.venue, e.gate) == ("hall.g1", "hall", "g1")
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert e.fingerprint == enroll.fingerprint_pem(pem) == enroll.fingerprint(key.public_key())
    assert len(e.fingerprint) == 64


def _tampered(field: str, value: str) -> bytes:
    doc = json.loads(enroll.make_request(Ed25519PrivateKey.generate(), "d1", "v", "g"))
    doc[field] = value
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_tampered("gate", "g2"), "signature does not verify"),
        (_tampered("fingerprint", "0" * 64), "fingerprint does not match"),
        (_tampered("device_id", "../../etc"), "not a plain id"),
        (_tampered("format", "other/1"), "format"),
        (_tampered("public_key", "not base64!"), "not valid"),
        (b"\xff\xfe", "not JSON"),
        (b"[]", "format"),
        (b"{" + b" " * 5000 + b"}", "larger than"),
    ],
)
def test_bad_requests_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(EnrollmentError, match=message):
        enroll.verify_request(data)


def test_another_devices_key_is_copied_in_vain() -> None:
    """A request signed by key A but carrying key B's public key does not verify."""
    a, b = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    doc = json.loads(enroll.make_request(a, "d1", "v", "g"))
    other = json.loads(enroll.make_request(b, "d1", "v", "g"))
    doc["public_key"], doc["fingerprint"] = other["public_key"], other["fingerprint"]
    with pytest.raises(EnrollmentError, match="signature does not verify"):
        enroll.verify_request(json.dumps(doc).encode())


def test_registry_adds_keeps_and_refuses_other_key(tmp_path: Path) -> None:
    reg = tmp_path / "devices.json"
    k1, k2 = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    e1 = enroll.verify_request(enroll.make_request(k1, "d1", "v", "g"))
    assert enroll.register(reg, e1, now=NOW) == "added"
    before = reg.read_bytes()
    assert enroll.register(reg, e1, now=NOW.replace(hour=10)) == "unchanged"
    assert reg.read_bytes() == before
    e2 = enroll.verify_request(enroll.make_request(k2, "d1", "v", "g"))
    with pytest.raises(EnrollmentError, match="registered with another key"):
        enroll.register(reg, e2, now=NOW)
    assert reg.read_bytes() == before
    assert enroll.register(reg, e2, now=NOW, replace=True) == "replaced"
    doc = json.loads(reg.read_text())
    assert doc["devices"]["d1"]["fingerprint"] == e2.fingerprint
    assert doc["devices"]["d1"]["registered"] == NOW.isoformat()


def test_cli_device_and_authority_sides(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "s.toml"
    conf.write_text('data_dir = "data"\n[venue]\nid = "hall"\n[gate]\nid = "g7"\n')
    out = tmp_path / "enrollment.json"
    assert main(["enroll", "--config", str(conf), "--out", str(out)]) == 0
    first = capsys.readouterr().out
    assert "device hall.g7" in first and "(written)" in first
    key_file = tmp_path / "data" / "device_key.pem"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert main(["enroll", "--config", str(conf), "--out", str(out)]) == 0
    assert "(unchanged)" in capsys.readouterr().out

    fpr = enroll.fingerprint_pem(key_file.read_bytes())
    assert f"fingerprint {fpr}" in first
    assert main(["enroll", "--fingerprint", str(key_file)]) == 0
    assert capsys.readouterr().out.strip() == fpr

    reg = tmp_path / "devices.json"
    assert main(["enroll", "--register", str(out), "--registry", str(reg)]) == 0
    assert capsys.readouterr().out.startswith(f"added: device hall.g7 (venue hall, gate g7) {fpr}")
    # tamper with the gate id only (a blind byte replace could also hit the random keys)
    doc = json.loads(out.read_bytes())

    def retag(v: object) -> object:
        if isinstance(v, dict):
            return {k: retag(x) for k, x in v.items()}
        if isinstance(v, list):
            return [retag(x) for x in v]
        return "g8" if v == "g7" else v

    tampered = retag(doc)
    assert tampered != doc
    out.write_text(json.dumps(tampered))
    assert main(["enroll", "--register", str(out), "--registry", str(reg)]) == 1
    assert "does not verify" in capsys.readouterr().err


@pytest.fixture
def enroll_server() -> Iterator[tuple[str, list[bytes]]]:
    received: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            n = int(self.headers["Content-Length"])
            received.append(self.rfile.read(n))
            status = 201 if self.path == "/enroll" else 404
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", received
    srv.shutdown()
    srv.server_close()
    t.join(timeout=10)


def test_post_reaches_the_authority(enroll_server: tuple[str, list[bytes]]) -> None:
    url, received = enroll_server
    req = enroll.make_request(Ed25519PrivateKey.generate(), "d9", "v", "g")
    assert enroll.post(f"{url}/enroll", req) == 201
    assert received == [req]
    assert enroll.verify_request(received[0]).device_id == "d9"
    with pytest.raises(EnrollmentError, match="HTTP 404"):
        enroll.post(f"{url}/nope", req)


def test_post_to_closed_port_is_one_clear_error() -> None:
    req = enroll.make_request(Ed25519PrivateKey.generate(), "d9", "v", "g")
    with pytest.raises(EnrollmentError, match="enrollment POST to http://127.0.0.1:9/ failed"):
        enroll.post("http://127.0.0.1:9/", req, timeout_s=5)

"""Device enrollment: register a device's public key with the authority's publisher.

Every device has an Ed25519 key (``data_dir/device_key.pem``, created on first use; the
audit chain is signed with it).  Enrollment makes that key known to the authority, so
fleet operators can tell devices apart and check what a device signed:

* the device writes an *enrollment request*: its id, venue, gate and public key, signed
  with the key itself (proof of possession), as canonical JSON;
* the operator carries the file to the authority (or the device POSTs it to a URL);
* the authority verifies it and adds it to a device registry (``devices.json``).  A
  device id already registered with another key is refused unless replaced on purpose.

Fingerprints are SHA-256 over the DER SubjectPublicKeyInfo, lowercase hex: short enough
to read over the phone, the same for a PEM file and for the key inside a request.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from sentinel.errors import SentinelError

FORMAT = "sentinel-enrollment/1"
MAX_REQUEST_BYTES = 4096
MAX_REGISTRY_BYTES = 16 * 1024 * 1024
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,128}$")


class EnrollmentError(SentinelError):
    """An enrollment request or the registry is refused (bad shape, signature or key)."""


@dataclass(frozen=True, slots=True)
class Enrollment:
    """A verified enrollment: which device holds which public key."""

    device_id: str
    venue: str
    gate: str
    public_key: str  # base64 of the raw 32-byte Ed25519 public key
    fingerprint: str
    seal_key: str = ""  # base64 of the raw X25519 key the status key is sealed to (D4)


def fingerprint(key: Ed25519PublicKey | Any) -> str:
    """SHA-256 of the key's DER SubjectPublicKeyInfo, lowercase hex."""
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def fingerprint_pem(pem: bytes) -> str:
    """The fingerprint of a public key, private key or certificate in PEM."""
    if b"CERTIFICATE" in pem:
        from cryptography import x509

        return fingerprint(x509.load_pem_x509_certificate(pem).public_key())
    try:
        return fingerprint(serialization.load_pem_public_key(pem))
    except ValueError:
        pass
    try:
        return fingerprint(serialization.load_pem_private_key(pem, password=None).public_key())
    except (ValueError, TypeError):
        raise EnrollmentError("not a PEM public key, private key or certificate") from None


def _canonical(fields: dict[str, str]) -> bytes:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _check_id(name: str, value: object) -> str:
    if not isinstance(value, str) or not _ID.match(value):
        raise EnrollmentError(f"enrollment request: '{name}' is missing or not a plain id")
    return value


def make_request(
    key: Ed25519PrivateKey, device_id: str, venue: str, gate: str, seal_key: Any = None
) -> bytes:
    """The signed enrollment request (deterministic: same key and ids, same bytes).

    ``seal_key``: the device's X25519 public key the publisher seals the status key to
    (``trust/sealing.py``); signed with the rest, so it cannot be swapped in transit.
    """
    pub = key.public_key()
    fields = {
        "format": FORMAT,
        "device_id": _check_id("device_id", device_id),
        "venue": _check_id("venue", venue),
        "gate": _check_id("gate", gate),
        "public_key": base64.b64encode(pub.public_bytes_raw()).decode(),
        "fingerprint": fingerprint(pub),
    }
    if seal_key is not None:
        fields["seal_key"] = base64.b64encode(seal_key.public_bytes_raw()).decode()
    signature = base64.b64encode(key.sign(_canonical(fields))).decode()
    return json.dumps({**fields, "signature": signature}, indent=2, sort_keys=True).encode() + b"\n"


def verify_request(data: bytes) -> Enrollment:
    """Check a request's shape and self-signature; raise EnrollmentError when refused."""
    if len(data) > MAX_REQUEST_BYTES:
        raise EnrollmentError(f"enrollment request larger than {MAX_REQUEST_BYTES} bytes")
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise EnrollmentError("enrollment request is not JSON") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise EnrollmentError(f"enrollment request: format is not {FORMAT}")
    expected = {"format", "device_id", "venue", "gate", "public_key", "fingerprint", "signature"}
    if set(doc) - {"seal_key"} != expected or not all(isinstance(v, str) for v in doc.values()):
        raise EnrollmentError("enrollment request: unexpected or missing fields")
    for name in ("device_id", "venue", "gate"):
        _check_id(name, doc[name])
    try:
        pub = Ed25519PublicKey.from_public_bytes(base64.b64decode(doc["public_key"], validate=True))
        sig = base64.b64decode(doc["signature"], validate=True)
    except ValueError:
        raise EnrollmentError("enrollment request: public key or signature is not valid") from None
    if "seal_key" in doc:
        try:
            raw = base64.b64decode(doc["seal_key"], validate=True)
            X25519PublicKey.from_public_bytes(raw)
        except ValueError:
            raise EnrollmentError("enrollment request: seal_key is not an X25519 key") from None
    if fingerprint(pub) != doc["fingerprint"]:
        raise EnrollmentError("enrollment request: fingerprint does not match the public key")
    fields = {k: v for k, v in doc.items() if k != "signature"}
    try:
        pub.verify(sig, _canonical(fields))
    except InvalidSignature:
        raise EnrollmentError("enrollment request: signature does not verify") from None
    return Enrollment(
        doc["device_id"],
        doc["venue"],
        doc["gate"],
        doc["public_key"],
        doc["fingerprint"],
        doc.get("seal_key", ""),
    )


def write_if_changed(path: Path, data: bytes, mode: int = 0o644) -> bool:
    """Write atomically (temp file in the same directory, fsync, replace); False if equal."""
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def _load_registry(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {"format": "sentinel-devices/1", "devices": {}}
    if len(raw) > MAX_REGISTRY_BYTES:
        raise EnrollmentError(f"{path}: registry larger than {MAX_REGISTRY_BYTES} bytes")
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise EnrollmentError(f"{path}: registry is not JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("devices"), dict):
        raise EnrollmentError(f"{path}: not a device registry")
    return doc


def register(
    registry: Path, enrollment: Enrollment, *, now: datetime, replace: bool = False
) -> str:
    """Add a verified enrollment to the registry; returns "added", "unchanged" or "replaced".

    A device id already bound to another key is refused unless ``replace`` (a re-imaged
    device), so a copied request cannot silently take over another device's identity.
    """
    doc = _load_registry(registry)
    devices: dict[str, Any] = doc["devices"]
    old = devices.get(enrollment.device_id)
    entry = {k: v for k, v in asdict(enrollment).items() if k != "device_id"}
    if old is not None and old.get("fingerprint") == enrollment.fingerprint:
        if {k: old.get(k) for k in entry} == entry:
            return "unchanged"
        outcome = "updated"
    elif old is not None and not replace:
        raise EnrollmentError(
            f"device {enrollment.device_id} is registered with another key "
            f"({old.get('fingerprint', '?')[:16]}…); use --replace for a re-imaged device"
        )
    else:
        outcome = "replaced" if old is not None else "added"
    devices[enrollment.device_id] = {**entry, "registered": now.isoformat(timespec="seconds")}
    data = json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n"
    write_if_changed(registry, data)
    return outcome


def post(url: str, request: bytes, *, client: Any = None, timeout_s: float = 15.0) -> int:
    """POST a request to the authority's enrollment endpoint; the HTTP status on success."""
    import httpx

    own = client is None
    c = client or httpx.Client(timeout=timeout_s)
    try:
        r = c.post(url, content=request, headers={"Content-Type": "application/json"})
    except httpx.HTTPError as exc:
        raise EnrollmentError(f"enrollment POST to {url} failed: {exc}") from None
    finally:
        if own:
            c.close()
    if r.status_code >= 300:
        raise EnrollmentError(f"enrollment POST to {url}: HTTP {r.status_code}")
    return r.status_code

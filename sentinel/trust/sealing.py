"""The status key, sealed to each enrolled device (D4 of the security review).

The lineage's status key (the salt of every lookup tag) is never published in clear.
The publisher seals it to each enrolled device's X25519 *seal key* with HPKE (RFC 9180
base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM, ``cryptography``'s
implementation; ``info`` binds the key id) and ships all of them as the part
``status_keys``::

    {"format": "sentinel-status-keys/1", "key_id": "<32 hex>",
     "devices": {"<seal key fingerprint>": "<base64 enc || ct>", ...}}

The device keeps its seal key in ``<data_dir>/device_seal_key.pem`` (0600, made by
``sentinel enroll``) and opens its own entry when it loads a bundle.  Without a secure
element that file is readable to whoever holds the SD card: a stolen device yields the
status key, and then each candidate number costs one memory-hard tag (``statusset.py``).
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite

from sentinel.errors import BundleFormatError, ConfigError

FORMAT = "sentinel-status-keys/1"
SEAL_KEY_FILE = "device_seal_key.pem"
SUITE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_128_GCM)
_INFO = b"sentinel/status-key/v1|"
MAX_PART_BYTES = 8 << 20  # ~90 000 devices


def fingerprint(pub: x25519.X25519PublicKey) -> str:
    """SHA-256 (hex) of the seal key's raw 32 bytes: its name in ``status_keys``."""
    return hashlib.sha256(pub.public_bytes_raw()).hexdigest()


def info(key_id: str) -> bytes:
    return _INFO + key_id.encode()


def load_seal_key(data_dir: str | Path) -> x25519.X25519PrivateKey | None:
    p = Path(data_dir) / SEAL_KEY_FILE
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read the device seal key: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(raw, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{p}: not a PEM private key: {exc}") from None
    if not isinstance(key, x25519.X25519PrivateKey):
        raise ConfigError(f"{p}: the device seal key must be X25519")
    return key


def write_seal_key(data_dir: str | Path, key: x25519.X25519PrivateKey) -> Path:
    """Write the seal key atomically with mode 0600 (whatever the umask)."""
    d = Path(data_dir)
    d.mkdir(parents=True, exist_ok=True)
    p = d / SEAL_KEY_FILE
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    tmp = p.with_name(f".{p.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, p)
    return p


def load_or_create_seal_key(data_dir: str | Path) -> x25519.X25519PrivateKey:
    key = load_seal_key(data_dir)
    if key is None:
        key = x25519.X25519PrivateKey.generate()
        write_seal_key(data_dir, key)
    return key


def parse_status_keys(data: bytes) -> dict[str, Any]:
    from sentinel.trust.bundle import loads_bounded

    if len(data) > MAX_PART_BYTES:
        raise BundleFormatError("status_keys part is too large")
    doc = loads_bounded(data, "status_keys part")
    if (
        not isinstance(doc, dict)
        or doc.get("format") != FORMAT
        or not isinstance(doc.get("key_id"), str)
        or not isinstance(doc.get("devices"), dict)
        or not all(isinstance(v, str) for v in doc["devices"].values())
    ):
        raise BundleFormatError(f"status_keys part: not {FORMAT}")
    return doc


def open_status_key(data: bytes, key: x25519.X25519PrivateKey, key_id: str) -> bytes | None:
    """This device's status key from the ``status_keys`` part, or None when the part
    holds no entry for it (not enrolled when the bundle was built) or it does not open."""
    from sentinel.trust.statusset import key_id as kid_of

    doc = parse_status_keys(data)
    if doc["key_id"] != key_id:
        raise BundleFormatError("status_keys part names another status key than the manifest")
    sealed = doc["devices"].get(fingerprint(key.public_key()))
    if sealed is None:
        return None
    try:
        status_key = SUITE.decrypt(base64.b64decode(sealed, validate=True), key, info=info(key_id))
    except Exception:  # InvalidTag, bad base64: not for this key
        return None
    return status_key if kid_of(status_key).hex() == key_id else None

"""The health authority's side of sealed check-in records: its X25519 record key pair,
and opening what venues hand over (the device only seals: ``credentials/records.py``).

HPKE (RFC 9180 base mode) with the suite and ``info`` the device seals with; a record
opens only with the private key and only under the hour it was sealed for.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cbor2
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519

from sentinel.credentials.healthcode_keys import record_kid
from sentinel.credentials.records import (
    HANDOVER_FORMAT,
    INFO,
    SUITE,
    CheckinRecord,
    hour_of,
    parse_line,
)
from sentinel.errors import ConfigError

__all__ = [
    "generate_record_key",
    "load_private_key",
    "open_handover",
    "open_sealed",
    "private_key_pem",
    "record_kid",
]


def open_sealed(line: dict[str, Any], key: x25519.X25519PrivateKey) -> CheckinRecord:
    """Open one sealed line with the authority's private key (ValueError if it fails)."""
    try:
        sealed = base64.b64decode(line["sealed"], validate=True)
        plain = SUITE.decrypt(sealed, key, info=INFO + str(line["hour"]).encode())
        d = cbor2.loads(plain)
        rec = CheckinRecord(str(d[1]), datetime.fromtimestamp(d[2], UTC), str(d[3]), str(d[4]))
    except Exception as exc:  # InvalidTag, bad base64, bad CBOR: all "cannot open"
        raise ValueError(f"record does not open: {type(exc).__name__}") from None
    if hour_of(rec.time) != line["hour"]:
        raise ValueError("record time does not match its hour")
    return rec


def open_handover(path: str | Path, key: x25519.X25519PrivateKey) -> list[CheckinRecord]:
    """Open every record of a handover file (ValueError on a bad one)."""
    raw = Path(path).read_bytes().split(b"\n")
    try:
        header = json.loads(raw[0])
    except (ValueError, IndexError):
        raise ValueError("not a check-in handover file") from None
    if not isinstance(header, dict) or header.get("format") != HANDOVER_FORMAT:
        raise ValueError("not a check-in handover file")
    out = []
    for chunk in raw[1:]:
        if chunk.strip():
            d = parse_line(chunk)
            if d is None:
                raise ValueError("damaged line in handover file")
            out.append(open_sealed(d, key))
    return out


# --- record keys ------------------------------------------------------------------------------


def generate_record_key() -> x25519.X25519PrivateKey:
    return x25519.X25519PrivateKey.generate()


def private_key_pem(key: x25519.X25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_private_key(path: str | Path) -> x25519.X25519PrivateKey:
    p = Path(path)
    try:
        key = serialization.load_pem_private_key(p.read_bytes(), password=None)
    except (OSError, ValueError, TypeError, binascii.Error) as exc:
        raise ConfigError(f"{p}: cannot load the record key: {exc}") from None
    if not isinstance(key, x25519.X25519PrivateKey):
        raise ConfigError(f"{p}: the record key must be X25519")
    return key

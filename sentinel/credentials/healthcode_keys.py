"""Trusted health-code keys: the ``healthcode_keys`` bundle part and the keys file.

JSON (``docs/healthcode.md``)::

    {"format": "sentinel-healthcode-keys", "version": 1,
     "issuers": [{"kid": "<base64>", "alg": "EdDSA" | "ES256",
                  "public_key": "<base64 SubjectPublicKeyInfo DER>",
                  "not_before": "<ISO time>" | null, "not_after": "<ISO time>" | null}],
     "record_keys": [{"kid": "<hex>", "public_key": "<base64 SPKI DER, X25519>"}]}

``issuers`` sign codes; ``record_keys`` (first one used) seal check-in records.  A kid
left out is computed: the first 4 bytes of the SHA-256 of the SPKI DER.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519

from sentinel.errors import ConfigError

ALG_EDDSA = -8  # RFC 9053 §2.2
ALG_ES256 = -7
ALG_NAMES = {ALG_EDDSA: "EdDSA", ALG_ES256: "ES256"}
KID_BYTES = 4  # short, to keep the QR small; colliding kids are tried in turn
KEYS_FORMAT = "sentinel-healthcode-keys"

IssuingPublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey


def spki_der(key: IssuingPublicKey | x25519.X25519PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def kid_of(key: IssuingPublicKey | x25519.X25519PublicKey) -> bytes:
    """The key id of a public key: the first 4 bytes of the SHA-256 of its SPKI DER."""
    return hashlib.sha256(spki_der(key)).digest()[:KID_BYTES]


def record_kid(key: x25519.X25519PublicKey) -> str:
    """The id of a record-sealing key: hex of the first 8 bytes of SHA-256(raw key)."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class IssuingKey:
    """A trusted issuing public key, allowed to sign codes between its two times."""

    kid: bytes
    alg: int
    public_key: IssuingPublicKey
    not_before: datetime | None = None
    not_after: datetime | None = None


@dataclass(frozen=True, slots=True)
class HealthCodeKeys:
    """The ``healthcode_keys`` bundle part: issuing keys, and the record-sealing key."""

    issuers: tuple[IssuingKey, ...] = ()
    record_keys: tuple[x25519.X25519PublicKey, ...] = ()

    def lookup(self, kid: bytes) -> list[IssuingKey]:
        return [k for k in self.issuers if k.kid == kid]

    @classmethod
    def from_json_bytes(cls, data: bytes, source: str = "<healthcode keys>") -> HealthCodeKeys:
        """Parse the JSON format of ``docs/healthcode.md``; ConfigError names the source."""
        try:
            doc = json.loads(data)
            if doc.get("format") != KEYS_FORMAT:
                raise ValueError(f"format is not {KEYS_FORMAT!r}")
            issuers = tuple(_issuer_from_json(e) for e in doc.get("issuers", []))
            records = []
            for e in doc.get("record_keys", []):
                key = serialization.load_der_public_key(_b64(e["public_key"]))
                if not isinstance(key, x25519.X25519PublicKey):
                    raise ValueError("a record key must be X25519")
                records.append(key)
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
            raise ConfigError(f"{source}: not valid health-code keys: {exc}") from None
        return cls(issuers, tuple(records))

    @classmethod
    def load(cls, path: str | Path) -> HealthCodeKeys:
        p = Path(path)
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{p}: cannot read health-code keys: {exc.strerror}") from None
        return cls.from_json_bytes(data, str(p))

    def to_json_bytes(self) -> bytes:
        def t(d: datetime | None) -> str | None:
            return d.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if d else None

        doc = {
            "format": KEYS_FORMAT,
            "version": 1,
            "issuers": [
                {
                    "kid": base64.b64encode(k.kid).decode(),
                    "alg": ALG_NAMES[k.alg],
                    "public_key": base64.b64encode(spki_der(k.public_key)).decode(),
                    "not_before": t(k.not_before),
                    "not_after": t(k.not_after),
                }
                for k in self.issuers
            ],
            "record_keys": [
                {"kid": record_kid(k), "public_key": base64.b64encode(spki_der(k)).decode()}
                for k in self.record_keys
            ],
        }
        return json.dumps(doc, indent=1).encode()


def _b64(value: Any) -> bytes:
    if not isinstance(value, str):
        raise ValueError("base64 text expected")
    return base64.b64decode(value, validate=True)


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _issuer_from_json(e: Mapping[str, Any]) -> IssuingKey:
    key = serialization.load_der_public_key(_b64(e["public_key"]))
    alg = {"EdDSA": ALG_EDDSA, "ES256": ALG_ES256}.get(e.get("alg"))
    if alg == ALG_EDDSA and not isinstance(key, ed25519.Ed25519PublicKey):
        raise ValueError("EdDSA key is not Ed25519")
    if alg == ALG_ES256 and not (
        isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)
    ):
        raise ValueError("ES256 key is not P-256")
    if alg is None:
        raise ValueError(f"alg must be EdDSA or ES256, not {e.get('alg')!r}")
    assert isinstance(key, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey)
    kid = _b64(e["kid"]) if e.get("kid") else kid_of(key)
    return IssuingKey(kid, alg, key, _time(e.get("not_before")), _time(e.get("not_after")))

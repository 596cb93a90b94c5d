"""Issuing health codes: the authority side, for ``sentinel issue-code``, demo and tests."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import base45
import cbor2
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from sentinel.credentials import dcc
from sentinel.credentials.healthcode import (
    CWT_EXP,
    CWT_HEALTH,
    CWT_IAT,
    CWT_SUB,
    MAX_SUBJECT_CHARS,
    PREFIX,
    STATUSES,
)
from sentinel.credentials.healthcode_keys import (
    ALG_EDDSA,
    ALG_ES256,
    HealthCodeKeys,
    IssuingKey,
    kid_of,
)
from sentinel.errors import ConfigError
from sentinel.reasons import ReasonCode
from sentinel.trust.provider import StatusEntry

IssuingPrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True, slots=True)
class Issuer:
    """The authority's issuing key."""

    private_key: IssuingPrivateKey

    @property
    def alg(self) -> int:
        return ALG_EDDSA if isinstance(self.private_key, ed25519.Ed25519PrivateKey) else ALG_ES256

    @property
    def kid(self) -> bytes:
        return kid_of(self.private_key.public_key())

    def trusted(
        self, not_before: datetime | None = None, not_after: datetime | None = None
    ) -> IssuingKey:
        """This key as a device trusts it."""
        return IssuingKey(self.kid, self.alg, self.private_key.public_key(), not_before, not_after)

    @classmethod
    def generate(cls, alg: str = "EdDSA") -> Issuer:
        if alg == "ES256":
            return cls(ec.generate_private_key(ec.SECP256R1()))
        return cls(ed25519.Ed25519PrivateKey.generate())

    @classmethod
    def load_pem(cls, path: str | Path) -> Issuer:
        p = Path(path)
        try:
            key = serialization.load_pem_private_key(p.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigError(f"{p}: cannot load the issuing key: {exc}") from None
        if not isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
            raise ConfigError(f"{p}: the issuing key must be Ed25519 or P-256")
        return cls(key)

    def pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def issue(
    issuer: Issuer,
    subject: str,
    status: str,
    *,
    issued_at: datetime,
    lifetime_s: float = 120.0,
    status_valid_until: datetime,
) -> str:
    """One ``HC:`` QR text for ``subject`` with ``status``, valid ``lifetime_s`` from issue."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}")
    if not 0 < len(subject) <= MAX_SUBJECT_CHARS:
        raise ValueError(f"subject id must be 1..{MAX_SUBJECT_CHARS} characters")
    iat = int(issued_at.timestamp())
    payload = cbor2.dumps(
        {
            CWT_SUB: subject,
            CWT_EXP: iat + int(lifetime_s),
            CWT_IAT: iat,
            CWT_HEALTH: [STATUSES.index(status), int(status_valid_until.timestamp())],
        }
    )
    prot = cbor2.dumps({dcc.HDR_ALG: issuer.alg, dcc.HDR_KID: issuer.kid})
    to_sign = cbor2.dumps(["Signature1", prot, b"", payload])  # RFC 9052 §4.4
    key = issuer.private_key
    if isinstance(key, ed25519.Ed25519PrivateKey):
        sig = key.sign(to_sign)
    else:
        r, s = decode_dss_signature(key.sign(to_sign, ec.ECDSA(hashes.SHA256())))
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")  # RFC 9053 §2.1: raw r || s
    cose = cbor2.dumps([prot, {}, payload, sig])  # untagged: one byte less in the QR
    return PREFIX + base45.b45encode(cose).decode("ascii")


def series(
    issuer: Issuer,
    subject: str,
    status: str,
    *,
    start: datetime,
    count: int,
    every_s: float = 60.0,
    lifetime_s: float = 120.0,
    status_valid_until: datetime,
) -> list[tuple[datetime, str]]:
    """A rotating series, as a phone app redraws it: (time to show it from, text)."""
    out = []
    for k in range(count):
        at = start + timedelta(seconds=k * every_s)
        text = issue(
            issuer,
            subject,
            status,
            issued_at=at,
            lifetime_s=lifetime_s,
            status_valid_until=status_valid_until,
        )
        out.append((at, text))
    return out


class SubjectStatusSet:
    """A small in-memory status set of health-code subjects (demo, tests)."""

    def __init__(self, entries: Mapping[str, StatusEntry] | None = None) -> None:
        self._entries = dict(entries or {})

    def lookup_document(self, doc_type: str, country: str, number: str) -> StatusEntry | None:
        return None

    def lookup_subject(self, subject_id: str) -> StatusEntry | None:
        return self._entries.get(subject_id)


def tamper_status(text: str, status: str) -> str:
    """The forger's edit: rewrite the status inside a signed code, keeping the signature."""
    cose = cbor2.loads(base45.b45decode(text[len(PREFIX) :]))
    claims = cbor2.loads(cose[2])
    claims[CWT_HEALTH][0] = STATUSES.index(status)
    cose[2] = cbor2.dumps(claims)
    return PREFIX + base45.b45encode(cbor2.dumps(cose)).decode("ascii")


@dataclass(frozen=True, slots=True)
class DemoCodes:
    """Health-code presentations for ``sentinel demo``, with what the device needs."""

    cases: list[tuple[str, str, ReasonCode]]  # (name, QR text, expected reason)
    keys_json: bytes  # the "healthcode_keys" part
    status: SubjectStatusSet


def demo_codes(now: datetime) -> DemoCodes:
    """Fresh green, expired screenshot, red, green overridden by the status set, forged."""
    authority = Issuer.generate()
    day = timedelta(days=1)

    def code(subject: str, status: str, at: datetime = now) -> str:
        return issue(authority, subject, status, issued_at=at, status_valid_until=now + day)

    cases = [
        ("health code green", code("DEMOGREEN0A1", "green"), ReasonCode.ADMIT),
        (
            "code screenshot",
            code("DEMOSHOT0B2C", "green", now - timedelta(minutes=10)),
            ReasonCode.CODE_EXPIRED,
        ),
        ("health code red", code("DEMORED00C3D", "red"), ReasonCode.CODE_RED),
        ("code green, set red", code("DEMOCHNG0D4E", "green"), ReasonCode.CODE_STATUS_CHANGED),
        (
            "code forged green",
            tamper_status(code("DEMOFORG0E5F", "red"), "green"),
            ReasonCode.BAD_SIGNATURE,
        ),
    ]
    status = SubjectStatusSet(
        {
            "DEMOGREEN0A1": StatusEntry("green", now + day),
            "DEMOCHNG0D4E": StatusEntry("red", now + day),
        }
    )
    keys = HealthCodeKeys((authority.trusted(),))
    return DemoCodes(cases, keys.to_json_bytes(), status)

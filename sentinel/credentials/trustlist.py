"""Signer certificates a device trusts, looked up by COSE ``kid``.

File format (JSON, as written by ``sentinel publish`` and the demo)::

    {"signers": [{"kid": "<base64>", "country": "AT", "certificate": "<base64 DER>"}]}

The EU scheme's kid is the first 8 bytes of the SHA-256 of the DER certificate; when an
entry gives no kid, that one is computed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from sentinel.errors import ConfigError


def kid_of(der: bytes) -> bytes:
    """The EU DCC key identifier of a signer certificate (first 8 bytes of its SHA-256)."""
    return hashlib.sha256(der).digest()[:8]


@dataclass(frozen=True, slots=True)
class Signer:
    kid: bytes
    country: str
    certificate: x509.Certificate


class TrustList:
    """An immutable kid → signer map."""

    def __init__(self, signers: Iterable[Signer] = ()) -> None:
        self._by_kid: dict[bytes, list[Signer]] = {}
        for s in signers:
            self._by_kid.setdefault(s.kid, []).append(s)

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_kid.values())

    def __iter__(self) -> Iterator[Signer]:
        for v in self._by_kid.values():
            yield from v

    def lookup(self, kid: bytes) -> list[Signer]:
        """Signers with this kid (kids may collide; callers try each)."""
        return list(self._by_kid.get(kid, ()))

    @classmethod
    def from_certificates(cls, ders: Iterable[bytes], country: str = "") -> TrustList:
        return cls(Signer(kid_of(d), country, x509.load_der_x509_certificate(d)) for d in ders)

    @classmethod
    def from_json_bytes(cls, data: bytes, source: str = "<trust list>") -> TrustList:
        try:
            doc = json.loads(data)
            signers = []
            for entry in doc["signers"]:
                der = base64.b64decode(entry["certificate"], validate=True)
                kid = (
                    base64.b64decode(entry["kid"], validate=True)
                    if entry.get("kid")
                    else kid_of(der)
                )
                cert = x509.load_der_x509_certificate(der)
                signers.append(Signer(kid, str(entry.get("country", "")), cert))
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise ConfigError(f"{source}: not a valid trust list: {exc}") from None
        return cls(signers)

    @classmethod
    def load(cls, path: str | Path) -> TrustList:
        p = Path(path)
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{p}: cannot read trust list: {exc.strerror}") from None
        return cls.from_json_bytes(data, str(p))

    def to_json_bytes(self) -> bytes:
        from cryptography.hazmat.primitives.serialization import Encoding

        return json.dumps(
            {
                "signers": [
                    {
                        "kid": base64.b64encode(s.kid).decode(),
                        "country": s.country,
                        "certificate": base64.b64encode(
                            s.certificate.public_bytes(Encoding.DER)
                        ).decode(),
                    }
                    for s in self
                ]
            },
            indent=1,
        ).encode()

"""The issuing side of the EU DCC chain (the authority), for the demo, tests and benchmarks.

Builds real, spec-shaped certificates: CWT claims → COSE_Sign1 (ES256 or PS256, signed
with ``cryptography``) → zlib → base45 → ``HC1:``.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import base45
import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from sentinel.credentials import dcc
from sentinel.credentials.trustlist import kid_of


@dataclass(frozen=True)
class IssuerKey:
    """A document signer: private key plus its certificate."""

    private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    certificate: x509.Certificate

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(Encoding.DER)

    @property
    def kid(self) -> bytes:
        return kid_of(self.der)


def make_signer(
    country: str = "XX",
    *,
    rsa_key: bool = False,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    cert_types: str = "",
    common_name: str = "Sentinel Demo DSC",
) -> IssuerKey:
    """A self-signed document signer certificate (``cert_types`` "v","t","r" sets the EKU)."""
    key: Any = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if rsa_key
        else ec.generate_private_key(ec.SECP256R1())
    )
    now = datetime.now(UTC)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, country),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - timedelta(days=365))
        .not_valid_after(not_after or now + timedelta(days=3650))
    )
    if cert_types:
        oids = [
            x509.ObjectIdentifier(o)
            for o, t in dcc.EKU_TYPES.items()
            if t in cert_types and ".0.1847" not in o
        ]
        builder = builder.add_extension(x509.ExtendedKeyUsage(oids), critical=False)
    cert = builder.sign(key, hashes.SHA256())
    return IssuerKey(key, cert)


def sign_cose(
    payload: bytes,
    signer: IssuerKey,
    *,
    kid_in_protected: bool = True,
    tagged: bool = True,
) -> bytes:
    """A COSE_Sign1 over ``payload`` (RFC 9052 §4.4)."""
    is_rsa = isinstance(signer.private_key, rsa.RSAPrivateKey)
    alg = dcc.ALG_PS256 if is_rsa else dcc.ALG_ES256
    prot: dict[int, Any] = {dcc.HDR_ALG: alg}
    unprot: dict[int, Any] = {}
    (prot if kid_in_protected else unprot)[dcc.HDR_KID] = signer.kid
    prot_b = cbor2.dumps(prot)
    to_sign = cbor2.dumps(["Signature1", prot_b, b"", payload])
    if is_rsa:
        assert isinstance(signer.private_key, rsa.RSAPrivateKey)
        sig = signer.private_key.sign(
            to_sign,
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
            hashes.SHA256(),
        )
    else:
        assert isinstance(signer.private_key, ec.EllipticCurvePrivateKey)
        r, s = decode_dss_signature(signer.private_key.sign(to_sign, ec.ECDSA(hashes.SHA256())))
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    msg = [prot_b, unprot, payload, sig]
    return cbor2.dumps(cbor2.CBORTag(18, msg) if tagged else msg)


def encode_hc1(cose: bytes) -> str:
    """COSE bytes → ``HC1:`` QR text."""
    return dcc.PREFIX + base45.b45encode(zlib.compress(cose, 9)).decode("ascii")


def claims(
    dgc: Mapping[str, Any], *, issued_at: datetime, expires_at: datetime, issuer: str = "XX"
) -> bytes:
    return cbor2.dumps(
        {
            dcc.CWT_ISS: issuer,
            dcc.CWT_IAT: int(issued_at.timestamp()),
            dcc.CWT_EXP: int(expires_at.timestamp()),
            dcc.CWT_HCERT: {1: dict(dgc)},
        }
    )


def person(family: str = "Mustermann", given: str = "Erika", dob: str = "1974-08-12") -> dict:
    def icao(s: str) -> str:
        return s.upper().replace(" ", "<").replace("-", "<")

    return {
        "ver": "1.3.0",
        "nam": {"fn": family, "fnt": icao(family), "gn": given, "gnt": icao(given)},
        "dob": dob,
    }


def vaccination(dn: int = 2, sd: int = 2, on: str = "2021-06-01", co: str = "XX") -> dict:
    return {
        "v": [
            {
                "tg": "840539006",
                "vp": "1119349007",
                "mp": "EU/1/20/1528",
                "ma": "ORG-100030215",
                "dn": dn,
                "sd": sd,
                "dt": on,
                "co": co,
                "is": "Sentinel Demo Authority",
                "ci": f"URN:UVCI:01:{co}:DEMO{dn}{sd}{on.replace('-', '')}#X",
            }
        ]
    }


def test(sampled: datetime, *, negative: bool = True, tt: str = "LP6464-4", co: str = "XX") -> dict:
    return {
        "t": [
            {
                "tg": "840539006",
                "tt": tt,
                "nm": "Demo PCR",
                "sc": sampled.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "tr": dcc.TEST_NOT_DETECTED if negative else "260373001",
                "tc": "Demo Test Centre",
                "co": co,
                "is": "Sentinel Demo Authority",
                "ci": f"URN:UVCI:01:{co}:TEST{int(sampled.timestamp())}#X",
            }
        ]
    }


def recovery(first_positive: str, valid_from: str, valid_until: str, co: str = "XX") -> dict:
    return {
        "r": [
            {
                "tg": "840539006",
                "fr": first_positive,
                "df": valid_from,
                "du": valid_until,
                "co": co,
                "is": "Sentinel Demo Authority",
                "ci": f"URN:UVCI:01:{co}:REC{first_positive.replace('-', '')}#X",
            }
        ]
    }


def issue(
    entry: Mapping[str, Any],
    signer: IssuerKey,
    *,
    issued_at: datetime,
    expires_at: datetime,
    holder: Mapping[str, Any] | None = None,
) -> str:
    """A complete HC1 QR text for ``holder`` with one v/t/r ``entry``."""
    dgc = {**(holder or person()), **entry}
    payload = claims(
        dgc,
        issued_at=issued_at,
        expires_at=expires_at,
        issuer=signer.certificate.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value,
    )
    return encode_hc1(sign_cose(payload, signer))

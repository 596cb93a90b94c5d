"""Signatures as the reference verifiers accept them, and none that a wrong signer made.

Each accepted form is signed here with real keys (cryptography), verified through the whole
chain, and paired with the attacks it must not open: another key under the same kid, a
tampered payload, a key of the other family, loose DER.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from sentinel.authority import dcc_issue as di
from sentinel.credentials import dcc
from sentinel.credentials.trustlist import Signer, TrustList, kid_of
from sentinel.errors import SignatureError

NOW = datetime(2022, 5, 1, 12, tzinfo=UTC)
DAY = timedelta(days=1)


# COSE algorithm identifiers from the IANA registry (RFC 9053 §2.1, RFC 8230 §2), not the
# code's own constants: a wrong constant there must fail here
ES256, ES384, PS256 = -7, -35, -37


def cert_for(key: Any) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "XX")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - 100 * DAY)
        .not_valid_after(NOW + 100 * DAY)
        .sign(key, hashes.SHA256())
    )


def payload() -> bytes:
    dgc = {**di.person(), **di.vaccination()}
    return di.claims(dgc, issued_at=NOW - DAY, expires_at=NOW + DAY)


def sign(key: Any, alg: int, *, kid: bytes, encoding: str = "raw", salt: int = 32) -> str:
    prot = cbor2.dumps({dcc.HDR_ALG: alg, dcc.HDR_KID: kid})
    body = payload()
    to_sign = cbor2.dumps(["Signature1", prot, b"", body])
    if isinstance(key, rsa.RSAPrivateKey):
        sig = key.sign(to_sign, padding.PSS(padding.MGF1(hashes.SHA256()), salt), hashes.SHA256())
    else:
        h = {ES256: hashes.SHA256, ES384: hashes.SHA384}[alg]()
        der = key.sign(to_sign, ec.ECDSA(h))
        if encoding == "der":
            sig = der
        else:
            n = (key.curve.key_size + 7) // 8
            r, s = decode_dss_signature(der)
            sig = r.to_bytes(n, "big") + s.to_bytes(n, "big")
    return di.encode_hc1(cbor2.dumps(cbor2.CBORTag(18, [prot, {}, body, sig])))


def trust_of(*certs: x509.Certificate, kid: bytes | None = None) -> TrustList:
    return TrustList([Signer(kid or kid_of(c.public_bytes(Encoding.DER)), "XX", c) for c in certs])


def kid(c: x509.Certificate) -> bytes:
    return kid_of(c.public_bytes(Encoding.DER))


P256 = ec.generate_private_key(ec.SECP256R1())
P384 = ec.generate_private_key(ec.SECP384R1())
RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.mark.parametrize(
    ("key", "alg", "encoding", "salt"),
    [
        (P384, ES256, "raw", 32),  # P-384 key under an ES256 header: 96-byte r||s
        (P384, ES384, "raw", 32),  # ES384 with P-384 (hcert-kotlin ECDSA_384)
        (P256, ES256, "der", 32),  # DER Ecdsa-Sig-Value instead of r||s
        (P384, ES256, "der", 32),
        (RSA, PS256, "raw", 0),  # PS256 salt lengths as issued
        (RSA, PS256, "raw", 222),  # PSS.MAX_LENGTH for 2048-bit / SHA-256
        (RSA, PS256, "raw", 32),
    ],
)
def test_accepted_as_the_reference_verifiers_do(
    key: Any, alg: int, encoding: str, salt: int
) -> None:
    c = cert_for(key)
    text = sign(key, alg, kid=kid(c), encoding=encoding, salt=salt)
    cred = dcc.verify(text, trust_of(c), NOW)
    assert cred.issuer_kid == kid(c).hex()


@pytest.mark.parametrize(
    ("key", "alg", "encoding"),
    [(P384, ES256, "raw"), (P256, ES256, "der"), (RSA, PS256, "raw")],
)
def test_a_wrong_signer_under_the_same_kid_is_refused(key: Any, alg: int, encoding: str) -> None:
    """Same kid, same curve/size, another key: every leniency still needs the trusted key."""
    trusted = cert_for(key)
    other = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if isinstance(key, rsa.RSAPrivateKey)
        else ec.generate_private_key(key.curve)
    )
    text = sign(other, alg, kid=kid(trusted), encoding=encoding)
    with pytest.raises(SignatureError) as exc:
        dcc.verify(text, trust_of(trusted), NOW)
    assert exc.value.reason.value == "BAD_SIGNATURE"


def test_tampered_payload_refused_in_every_encoding() -> None:
    c = cert_for(P384)
    for encoding in ("raw", "der"):
        text = sign(P384, ES256, kid=kid(c), encoding=encoding)
        cose = dcc.decode(text)
        body = cbor2.loads(cose.payload)
        body[dcc.CWT_EXP] += 1
        forged = cbor2.dumps(
            cbor2.CBORTag(18, [cose.protected_bytes, {}, cbor2.dumps(body), cose.signature])
        )
        with pytest.raises(SignatureError):
            dcc.verify(di.encode_hc1(forged), trust_of(c), NOW)


def test_key_of_the_other_family_refused() -> None:
    """An RSA signer under an ES256 header, an EC signer under PS256."""
    ec_cert, rsa_cert = cert_for(P256), cert_for(RSA)
    es = sign(P256, ES256, kid=kid(ec_cert))
    ps = sign(RSA, PS256, kid=kid(rsa_cert))
    with pytest.raises(SignatureError, match="algorithm -7 with an RSA key"):
        dcc.verify(es, trust_of(rsa_cert, kid=kid(ec_cert)), NOW)
    with pytest.raises(SignatureError, match="algorithm -37 with an EC key"):
        dcc.verify(ps, trust_of(ec_cert, kid=kid(rsa_cert)), NOW)


def test_loose_der_and_odd_lengths_refused() -> None:
    """Only strict DER: a trailing byte or a raw signature of the wrong size does not verify."""
    c = cert_for(P256)
    text = sign(P256, ES256, kid=kid(c), encoding="der")
    cose = dcc.decode(text)
    for sig in (cose.signature + b"\0", cose.signature[:-1], b"\x30" + cose.signature[1:40]):
        bad = cbor2.dumps(cbor2.CBORTag(18, [cose.protected_bytes, {}, cose.payload, sig]))
        with pytest.raises(SignatureError):
            dcc.verify(di.encode_hc1(bad), trust_of(c), NOW)


def test_revocation_signature_hash_takes_r_of_either_encoding() -> None:
    c = cert_for(P256)
    raw = dcc.decode(sign(P256, ES256, kid=kid(c)))
    der_text = sign(P256, ES256, kid=kid(c), encoding="der")
    der = dcc.decode(der_text)
    r, _ = decode_dss_signature(der.signature)
    assert dcc._ecdsa_r(der.signature) == r.to_bytes(32, "big")
    assert dcc._ecdsa_r(raw.signature) == raw.signature[:32]

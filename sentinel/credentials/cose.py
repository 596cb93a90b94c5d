"""COSE_Sign1 as the EU DCC uses it: ``HC1:`` text → base45 → zlib → COSE_Sign1, and the
signature check with a signer certificate's key.

Inputs are bounded: the QR text by ``MAX_TEXT_CHARS``, the inflated COSE by
``MAX_INFLATED_BYTES``, CBOR nesting by cbor2.  Every failure raises a ``CredentialError``
subclass carrying a ``ReasonCode``.

References: eHealth Network "Technical Specifications for Digital Green Certificates"
Vol. 3 (HC1 encoding), RFC 9052 §4.2/§4.4 (COSE_Sign1, Sig_structure), RFC 9053 §2.1
(ECDSA), RFC 8230 (PS256), RFC 9285 (base45).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import base45
import cbor2
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from sentinel.errors import MalformedCredential, SignatureError
from sentinel.reasons import ReasonCode

PREFIX = "HC1:"
MAX_TEXT_CHARS = 8192  # a version-40 QR holds 4296 alphanumerics; twice that is generous
MAX_INFLATED_BYTES = 64 * 1024  # a real DCC inflates to well under 2 KiB

ALG_ES256 = -7
ALG_ES384 = -35
ALG_ES512 = -36
ALG_PS256 = -37
HDR_ALG = 1
HDR_KID = 4


@dataclass(frozen=True, slots=True)
class CoseSign1:
    protected_bytes: bytes
    protected: Mapping[Any, Any]
    unprotected: Mapping[Any, Any]
    payload: bytes
    signature: bytes

    @property
    def kid(self) -> bytes | None:
        # DCC Vol. 3: the kid belongs in the protected header; fall back to unprotected.
        for hdr in (self.protected, self.unprotected):
            kid = hdr.get(HDR_KID)
            if isinstance(kid, bytes):
                return kid
        return None

    @property
    def alg(self) -> int | None:
        alg = self.protected.get(HDR_ALG, self.unprotected.get(HDR_ALG))
        return alg if isinstance(alg, int) else None


# --- decoding ---------------------------------------------------------------------------


def unprefix(text: str) -> str:
    """Strip the ``HC1:`` context identifier."""
    if len(text) > MAX_TEXT_CHARS:
        raise MalformedCredential(ReasonCode.TOO_LARGE, f"text longer than {MAX_TEXT_CHARS}")
    if not text.startswith(PREFIX):
        raise MalformedCredential(ReasonCode.UNREADABLE, "no HC1: prefix")
    return text[len(PREFIX) :]


def b45decode(text: str) -> bytes:
    """Base45 (RFC 9285) decode, refusing anything outside the alphabet."""
    try:
        return bytes(base45.b45decode(text))
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise MalformedCredential(ReasonCode.MALFORMED, f"base45: {exc}") from None


def inflate(data: bytes, max_bytes: int = MAX_INFLATED_BYTES) -> bytes:
    """zlib-inflate with a hard output cap (a zlib bomb stops at ``max_bytes``).

    DCC Vol. 3 §3.2: the COSE "SHALL be compressed using ZLIB"; an uncompressed COSE is
    refused (published test vector common/Z2 expects exactly that).
    """
    # RFC 1950 §2.2: CMF 0x78 (deflate, 32 KiB window) and a header checksum.
    if len(data) < 2 or data[0] & 0x0F != 8 or (data[0] << 8 | data[1]) % 31:
        raise MalformedCredential(ReasonCode.MALFORMED, "zlib: not a zlib stream")
    d = zlib.decompressobj()
    try:
        out = d.decompress(data, max_bytes + 1)
    except zlib.error as exc:
        raise MalformedCredential(ReasonCode.MALFORMED, f"zlib: {exc}") from None
    if len(out) > max_bytes or d.unconsumed_tail:
        raise MalformedCredential(ReasonCode.TOO_LARGE, f"inflates past {max_bytes} bytes")
    if not d.eof:
        raise MalformedCredential(ReasonCode.MALFORMED, "zlib: truncated stream")
    return out


def _cbor(data: bytes, what: str) -> Any:
    try:
        return cbor2.loads(data)
    except (cbor2.CBORDecodeError, ValueError, TypeError, RecursionError, OverflowError) as exc:
        raise MalformedCredential(ReasonCode.MALFORMED, f"{what}: {exc}") from None


def decode_cose(data: bytes) -> CoseSign1:
    """Parse a COSE_Sign1 structure, tagged (18) or untagged (RFC 9052 §4.2)."""
    obj = _cbor(data, "COSE")
    if isinstance(obj, cbor2.CBORTag) and obj.tag == 61:
        obj = obj.value  # RFC 8392 §6: a CWT tag may wrap the COSE_Sign1 tag
    if isinstance(obj, cbor2.CBORTag):
        if obj.tag != 18:
            raise MalformedCredential(ReasonCode.MALFORMED, f"COSE: tag {obj.tag}, not 18")
        obj = obj.value
    if not isinstance(obj, list | tuple) or len(obj) != 4:
        raise MalformedCredential(ReasonCode.MALFORMED, "COSE: not a 4-element array")
    prot_b, unprot, payload, sig = obj
    if not isinstance(prot_b, bytes) or not isinstance(payload, bytes):
        raise MalformedCredential(ReasonCode.MALFORMED, "COSE: header or payload not bytes")
    if not isinstance(sig, bytes) or not isinstance(unprot, Mapping):
        raise MalformedCredential(ReasonCode.MALFORMED, "COSE: bad signature or header")
    prot = _cbor(prot_b, "COSE protected header") if prot_b else {}
    if not isinstance(prot, Mapping):
        raise MalformedCredential(ReasonCode.MALFORMED, "COSE: protected header not a map")
    return CoseSign1(prot_b, prot, unprot, payload, sig)


def decode_claims(payload: bytes) -> Mapping[Any, Any]:
    claims = _cbor(payload, "CWT")
    if not isinstance(claims, Mapping):
        raise MalformedCredential(ReasonCode.MALFORMED, "CWT: payload not a map")
    return claims


def decode(text: str) -> CoseSign1:
    """QR text → COSE_Sign1 (no signature check)."""
    return decode_cose(inflate(b45decode(unprefix(text))))


# --- signature ------------------------------------------------------------------------------


def sig_structure(cose: CoseSign1) -> bytes:
    """RFC 9052 §4.4 Sig_structure for COSE_Sign1 with empty external_aad."""
    return cbor2.dumps(["Signature1", cose.protected_bytes, b"", cose.payload])


# COSE algorithm → hash (RFC 9053 §2.1).  DCC Vol. 3 §3.3.2 names ES256 and PS256; ES384/512
# appear with P-384/P-521 signers (hcert-kotlin CryptoAdapter signs ECDSA_384 with P-384).
_ECDSA_HASH = {ALG_ES256: hashes.SHA256, ALG_ES384: hashes.SHA384, ALG_ES512: hashes.SHA512}
_PSS_HASH = {ALG_PS256: hashes.SHA256}
ECDSA_ALGS = frozenset(_ECDSA_HASH)


def _ecdsa_der(sig: bytes, key: ec.EllipticCurvePublicKey) -> bytes:
    """The DER Ecdsa-Sig-Value for ``sig``, which is raw ``r || s`` or already DER.

    RFC 9053 §2.1: the COSE signature is ``r || s``, each the curve's field size — the
    *signer key's* curve, so a P-384 key under an ES256 header signs 96 bytes (the DGCA
    verifier splits any length in half: dgca-app-core-android ``convertToDer``).  Some
    issuers' JCA signers put the DER ``SEQUENCE {r, s}`` (RFC 3279 §2.2.3) into the COSE
    instead; that is accepted only as strict DER (re-encoding gives the same bytes), so no
    second encoding of one signature exists.  Either way the key decides.
    """
    n = (key.curve.key_size + 7) // 8
    if len(sig) == 2 * n:
        return encode_dss_signature(int.from_bytes(sig[:n], "big"), int.from_bytes(sig[n:], "big"))
    try:
        r, s = decode_dss_signature(sig)
    except ValueError:
        raise InvalidSignature from None
    if encode_dss_signature(r, s) != sig:
        raise InvalidSignature
    return sig


def _ecdsa_r(sig: bytes) -> bytes:
    """The ``r`` half of an ECDSA signature as the revocation hash takes it (raw: the first
    half; strict DER: ``r`` left-padded to the field size of P-256, P-384 or P-521)."""
    if len(sig) in (64, 96, 132):
        return sig[: len(sig) // 2]
    try:
        r, s = decode_dss_signature(sig)
        if encode_dss_signature(r, s) == sig:
            size = (r.bit_length() + 7) // 8
            return r.to_bytes(next(n for n in (32, 48, 66, size) if n >= size), "big")
    except ValueError:
        pass
    return sig[: len(sig) // 2]


def _verify_with(cose: CoseSign1, cert: x509.Certificate) -> None:
    """Verify ``cose`` with ``cert``'s key: the key's type and curve decide, the header's
    algorithm gives the hash.  A key of the other family (RSA under ES256) is refused."""
    key = cert.public_key()
    data = sig_structure(cose)
    alg = cose.alg
    try:
        if alg in _ECDSA_HASH and isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(_ecdsa_der(cose.signature, key), data, ec.ECDSA(_ECDSA_HASH[alg]()))
        elif alg in _PSS_HASH and isinstance(key, rsa.RSAPublicKey):
            # RFC 8230 §2 says salt = hash length; issuers used others, and OpenSSL-based
            # verifiers recover it from the signature (RSA_PSS_SALTLEN_AUTO, the default
            # for verification).  The salt length does not change whose key signed.
            h = _PSS_HASH[alg]()
            key.verify(cose.signature, data, padding.PSS(padding.MGF1(h), padding.PSS.AUTO), h)
        else:
            kind = "RSA" if isinstance(key, rsa.RSAPublicKey) else type(key).__name__
            kind = "EC" if isinstance(key, ec.EllipticCurvePublicKey) else kind
            raise SignatureError(ReasonCode.BAD_SIGNATURE, f"algorithm {alg} with an {kind} key")
    except InvalidSignature:
        raise SignatureError(ReasonCode.BAD_SIGNATURE, "signature does not verify") from None

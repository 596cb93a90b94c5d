"""The EU Digital COVID Certificate chain: ``HC1:`` → base45 → zlib → COSE_Sign1 → CWT.

Pure functions over bytes, a trust list and ``now``.  Every failure raises a
``CredentialError`` subclass carrying a ``ReasonCode``; nothing else escapes
(``verify`` converts stray decoder errors too).  Inputs are bounded: the QR text by
``MAX_TEXT_CHARS``, the inflated COSE by ``MAX_INFLATED_BYTES``, CBOR nesting by cbor2.

References: eHealth Network "Technical Specifications for Digital Green Certificates"
Vol. 3 (HC1 encoding), RFC 9052 §4.4 (COSE_Sign1 Sig_structure), RFC 8392 (CWT claims),
RFC 8230 (PS256 salt length = hash length).
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import base45
import cbor2
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from sentinel.credentials.model import (
    Credential,
    CredentialKind,
    Recovery,
    TestResult,
    Vaccination,
)
from sentinel.credentials.trustlist import Signer, TrustList
from sentinel.errors import CredentialError, MalformedCredential, SignatureError, ValidityError
from sentinel.reasons import ReasonCode

PREFIX = "HC1:"
MAX_TEXT_CHARS = 8192  # a version-40 QR holds 4296 alphanumerics; twice that is generous
MAX_INFLATED_BYTES = 64 * 1024  # a real DCC inflates to well under 2 KiB

ALG_ES256 = -7
ALG_PS256 = -37
HDR_ALG = 1
HDR_KID = 4
CWT_ISS, CWT_EXP, CWT_IAT, CWT_HCERT = 1, 4, 6, -260

# Extended key usage OIDs restricting a signer to certificate types (DCC Vol. 3 §5).
EKU_TYPES: dict[str, str] = {
    "1.3.6.1.4.1.1847.2021.1.1": "t",
    "1.3.6.1.4.1.1847.2021.1.2": "v",
    "1.3.6.1.4.1.1847.2021.1.3": "r",
    "1.3.6.1.4.1.0.1847.2021.1.1": "t",
    "1.3.6.1.4.1.0.1847.2021.1.2": "v",
    "1.3.6.1.4.1.0.1847.2021.1.3": "r",
}
TEST_NOT_DETECTED = "260415000"


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
    """zlib-inflate with a hard output cap (a zlib bomb stops at ``max_bytes``)."""
    if data[:1] != b"x":
        # DCC Vol. 3 allows uncompressed COSE; a COSE_Sign1 starts with tag 18 or an array.
        return data
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


def _verify_with(cose: CoseSign1, cert: x509.Certificate) -> None:
    key = cert.public_key()
    data = sig_structure(cose)
    alg = cose.alg
    try:
        if alg == ALG_ES256 and isinstance(key, ec.EllipticCurvePublicKey):
            if len(cose.signature) != 64:
                raise InvalidSignature
            r = int.from_bytes(cose.signature[:32], "big")
            s = int.from_bytes(cose.signature[32:], "big")
            key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256()))
        elif alg == ALG_PS256 and isinstance(key, rsa.RSAPublicKey):
            key.verify(
                cose.signature,
                data,
                padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
                hashes.SHA256(),
            )
        else:
            raise SignatureError(ReasonCode.BAD_SIGNATURE, f"algorithm {alg} not allowed")
    except InvalidSignature:
        raise SignatureError(ReasonCode.BAD_SIGNATURE, "signature does not verify") from None


def certificate_types(cert: x509.Certificate) -> frozenset[str]:
    """Certificate types ("v", "t", "r") the signer may sign; all three if unrestricted."""
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return frozenset("vtr")
    allowed = {EKU_TYPES[o.dotted_string] for o in eku if o.dotted_string in EKU_TYPES}
    return frozenset(allowed) if allowed else frozenset("vtr")


def find_signer(cose: CoseSign1, trust: TrustList) -> Signer:
    """Return the trusted signer whose key verifies ``cose``."""
    kid = cose.kid
    if kid is None:
        raise SignatureError(ReasonCode.UNKNOWN_SIGNER, "no kid in COSE headers")
    candidates = trust.lookup(kid)
    if not candidates:
        raise SignatureError(ReasonCode.UNKNOWN_SIGNER, f"kid {kid.hex()} not trusted")
    last: SignatureError | None = None
    for signer in candidates:
        try:
            _verify_with(cose, signer.certificate)
            return signer
        except SignatureError as exc:
            last = exc
    assert last is not None
    raise last


def check_signer(signer: Signer, cert_type: str, now: datetime) -> None:
    """Signer certificate valid at ``now`` and allowed to sign ``cert_type``."""
    cert = signer.certificate
    if not (cert.not_valid_before_utc <= now <= cert.not_valid_after_utc):
        raise SignatureError(ReasonCode.SIGNER_NOT_VALID, "signer certificate not valid now")
    if cert_type not in certificate_types(cert):
        raise SignatureError(ReasonCode.SIGNER_NOT_ALLOWED, f"signer not allowed for '{cert_type}'")


# --- payload --------------------------------------------------------------------------------


def _schema(cond: bool, what: str) -> None:
    if not cond:
        raise MalformedCredential(ReasonCode.SCHEMA_INVALID, what)


def _date(value: Any, what: str) -> date:
    _schema(isinstance(value, str), f"{what} missing")
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        raise MalformedCredential(ReasonCode.SCHEMA_INVALID, f"{what} not a date") from None


def _datetime(value: Any, what: str) -> datetime:
    _schema(isinstance(value, str), f"{what} missing")
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise MalformedCredential(ReasonCode.SCHEMA_INVALID, f"{what} not a time") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _int(value: Any, what: str) -> int:
    _schema(isinstance(value, int) and not isinstance(value, bool) and 0 < value < 100, what)
    return int(value)


def hcert(claims: Mapping[Any, Any]) -> tuple[str, Mapping[str, Any]]:
    """Return (type, entry) of the single v/t/r entry of the hcert claim."""
    h = claims.get(CWT_HCERT)
    _schema(isinstance(h, Mapping) and isinstance(h.get(1), Mapping), "hcert claim missing")
    dgc = h[1]
    entries = [(t, dgc[t]) for t in ("v", "t", "r") if t in dgc]
    _schema(len(entries) == 1, "exactly one of v, t, r expected")
    t, lst = entries[0]
    _schema(isinstance(lst, list | tuple) and len(lst) == 1, f"'{t}' must hold one entry")
    _schema(isinstance(lst[0], Mapping), f"'{t}' entry not a map")
    return t, lst[0]


def mask_name(name: str) -> str:
    """``Musterfrau`` → ``M*********``: enough for staff to compare, not to identify."""
    words = [w for w in name.replace("<", " ").split() if w]
    return " ".join(w[0] + "*" * (len(w) - 1) for w in words)


def masked_display(dgc: Mapping[str, Any]) -> str:
    nam = dgc.get("nam") if isinstance(dgc.get("nam"), Mapping) else {}
    fn = str(nam.get("fn") or nam.get("fnt") or "")
    gn = str(nam.get("gn") or nam.get("gnt") or "")
    dob = str(dgc.get("dob") or "")
    name = " ".join(p for p in (mask_name(fn), mask_name(gn)) if p)
    return f"{name}, {dob[:4]}" if dob[:4].isdigit() else name


def holder_pseudonym(dgc: Mapping[str, Any], key: bytes) -> str:
    """A keyed hash of the normalized name and date of birth (counts repeat refusals)."""
    if not key:
        return ""
    nam = dgc.get("nam") if isinstance(dgc.get("nam"), Mapping) else {}
    ident = "|".join(
        unicodedata.normalize("NFKC", str(x)).upper()
        for x in (nam.get("fnt", ""), nam.get("gnt", ""), dgc.get("dob", ""))
    )
    return hmac.new(key, ident.encode(), hashlib.sha256).hexdigest()[:32]


def revocation_keys(entry: Mapping[str, Any], cose: CoseSign1) -> tuple[str, ...]:
    """EU DCC revocation hashes: UCI, COUNTRYCODEUCI and SIGNATURE (first 16 bytes)."""
    uci = str(entry.get("ci", ""))
    co = str(entry.get("co", ""))
    sig = cose.signature[:32] if cose.alg == ALG_ES256 else cose.signature
    h = lambda b: hashlib.sha256(b).digest()[:16].hex()  # noqa: E731
    return (
        f"UCI:{h(uci.encode())}",
        f"COUNTRYCODEUCI:{h((co + uci).encode())}",
        f"SIGNATURE:{h(sig)}",
    )


def to_credential(
    cose: CoseSign1, claims: Mapping[Any, Any], signer: Signer, *, pseudonym_key: bytes = b""
) -> Credential:
    """Minimize a verified DCC into the fields a decision needs."""
    t, entry = hcert(claims)
    dgc = claims[CWT_HCERT][1]
    vac = test = rec = None
    if t == "v":
        kind = CredentialKind.DCC_VACCINATION
        vac = Vaccination(
            dose_number=_int(entry.get("dn"), "v.dn missing or out of range"),
            series_doses=_int(entry.get("sd"), "v.sd missing or out of range"),
            vaccinated_on=_date(entry.get("dt"), "v.dt"),
            product=str(entry.get("mp", "")),
            disease=str(entry.get("tg", "")),
        )
    elif t == "t":
        kind = CredentialKind.DCC_TEST
        _schema(isinstance(entry.get("tr"), str), "t.tr missing")
        _schema(isinstance(entry.get("tt"), str), "t.tt missing")
        test = TestResult(
            test_type=entry["tt"],
            sampled_at=_datetime(entry.get("sc"), "t.sc"),
            not_detected=entry["tr"] == TEST_NOT_DETECTED,
            disease=str(entry.get("tg", "")),
        )
    else:
        kind = CredentialKind.DCC_RECOVERY
        rec = Recovery(
            first_positive_on=_date(entry.get("fr"), "r.fr"),
            valid_from=_date(entry.get("df"), "r.df"),
            valid_until=_date(entry.get("du"), "r.du"),
            disease=str(entry.get("tg", "")),
        )
    iat, exp = claims.get(CWT_IAT), claims.get(CWT_EXP)
    return Credential(
        kind=kind,
        issuer_kid=signer.kid.hex(),
        issuer_country=str(claims.get(CWT_ISS, "")),
        issued_at=datetime.fromtimestamp(iat, UTC) if isinstance(iat, int | float) else None,
        expires_at=datetime.fromtimestamp(exp, UTC) if isinstance(exp, int | float) else None,
        vaccination=vac,
        test=test,
        recovery=rec,
        holder_pseudonym=holder_pseudonym(dgc, pseudonym_key),
        display_name=masked_display(dgc),
        revocation_keys=revocation_keys(entry, cose),
    )


def check_times(claims: Mapping[Any, Any], now: datetime, skew: timedelta) -> None:
    """CWT ``exp`` and ``iat`` at ``now`` (RFC 8392 §3.1.4, §3.1.6)."""
    exp, iat = claims.get(CWT_EXP), claims.get(CWT_IAT)
    for v, name in ((exp, "exp"), (iat, "iat")):
        if v is not None and not (isinstance(v, int | float) and abs(v) < 2**40):
            raise MalformedCredential(ReasonCode.MALFORMED, f"CWT {name} not a time")
    ts = now.timestamp()
    if exp is not None and ts > exp + skew.total_seconds():
        raise ValidityError(ReasonCode.EXPIRED, "certificate expired")
    if iat is not None and ts + skew.total_seconds() < iat:
        raise ValidityError(ReasonCode.NOT_YET_VALID, "issued in the future")


def verify(
    text: str,
    trust: TrustList,
    now: datetime,
    *,
    pseudonym_key: bytes = b"",
    skew: timedelta = timedelta(minutes=5),
) -> Credential:
    """The whole chain: QR text → verified, minimized Credential, or CredentialError."""
    try:
        cose = decode(text)
        claims = decode_claims(cose.payload)
        if len(trust) == 0:
            raise SignatureError(ReasonCode.NO_TRUST_DATA, "trust list is empty")
        signer = find_signer(cose, trust)
        cert_type, _ = hcert(claims)
        check_signer(signer, cert_type, now)
        check_times(claims, now, skew)
        return to_credential(cose, claims, signer, pseudonym_key=pseudonym_key)
    except CredentialError:
        raise
    except Exception as exc:  # a decoder bug must become a refusal, never a crash
        raise MalformedCredential(ReasonCode.MALFORMED, f"{type(exc).__name__}: {exc}") from None

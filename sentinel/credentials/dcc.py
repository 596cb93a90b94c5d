"""The EU Digital COVID Certificate chain: ``HC1:`` → base45 → zlib → COSE_Sign1 → CWT
(the COSE layer and its signature check are in ``cose.py``).

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
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from cryptography import x509

from sentinel.credentials.cose import (  # noqa: F401  (re-exported: dcc.decode etc.)
    ALG_ES256,
    ALG_ES384,
    ALG_ES512,
    ALG_PS256,
    ECDSA_ALGS,
    HDR_ALG,
    HDR_KID,
    MAX_INFLATED_BYTES,
    MAX_TEXT_CHARS,
    PREFIX,
    CoseSign1,
    _ecdsa_r,
    _verify_with,
    b45decode,
    decode,
    decode_claims,
    decode_cose,
    inflate,
    sig_structure,
    unprefix,
)
from sentinel.credentials.dcc_schema import (
    dose,
    hcert_entry,
    to_date,
    to_datetime,
    validate_payload,
)
from sentinel.credentials.identity import identity_pseudonym
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
NO_SKEW = timedelta(0)


def certificate_types(cert: x509.Certificate) -> frozenset[str]:
    """Certificate types ("v", "t", "r") the signer may sign; all three if unrestricted.

    hcert spec, "Key Usage Policy Identifiers": "If none of these OIDs are present the
    document shall be considered valid for all three" — also when the EKU holds only other
    purposes (the DGCA verifier's ``X509.isSuitable`` does the same).
    """
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return frozenset("vtr")
    except ValueError:
        # An extension cryptography cannot parse (vector common/CO15: an empty EKU
        # sequence).  No readable restriction: the signer is unrestricted, as when absent.
        return frozenset("vtr")
    allowed = {EKU_TYPES[o.dotted_string] for o in eku if o.dotted_string in EKU_TYPES}
    return frozenset(allowed) if allowed else frozenset("vtr")


K = TypeVar("K")


def first_verifying(
    cose: CoseSign1, candidates_for: Callable[[bytes], list[K]], verify: Callable[[K], None]
) -> K:
    """The first key for ``cose``'s kid whose signature check passes (kids may collide)."""
    kid = cose.kid
    if kid is None:
        raise SignatureError(ReasonCode.UNKNOWN_SIGNER, "no kid in COSE headers")
    candidates = candidates_for(kid)
    if not candidates:
        raise SignatureError(ReasonCode.UNKNOWN_SIGNER, f"kid {kid.hex()} not trusted")
    last: SignatureError | None = None
    for key in candidates:
        try:
            verify(key)
            return key
        except SignatureError as exc:
            last = exc
    assert last is not None
    raise last


def find_signer(cose: CoseSign1, trust: TrustList) -> Signer:
    """Return the trusted signer whose key verifies ``cose``."""
    return first_verifying(cose, trust.lookup, lambda s: _verify_with(cose, s.certificate))


def check_signer_validity(signer: Signer, now: datetime) -> None:
    """Signer certificate inside its validity period at ``now``."""
    cert = signer.certificate
    if not (cert.not_valid_before_utc <= aware(now) <= cert.not_valid_after_utc):
        raise SignatureError(ReasonCode.SIGNER_NOT_VALID, "signer certificate not valid now")


def check_key_usage(signer: Signer, cert_type: str) -> None:
    """The signer's extended key usage allows ``cert_type`` (DCC Vol. 3 §5)."""
    if cert_type not in certificate_types(signer.certificate):
        raise SignatureError(ReasonCode.SIGNER_NOT_ALLOWED, f"signer not allowed for '{cert_type}'")


# --- payload --------------------------------------------------------------------------------


def hcert(claims: Mapping[Any, Any]) -> tuple[str, Mapping[str, Any]]:
    """Return (type, entry) of the single v/t/r entry of the hcert claim."""
    t, entry, _ = hcert_entry(claims)
    return t, entry


_SYLLABIC = ("CJK ", "HANGUL", "HIRAGANA", "KATAKANA", "BOPOMOFO", "YI ")


def _syllabic(text: str) -> bool:
    """True when ``text`` holds ideographs or syllables (one character ≈ one name part)."""
    return any(unicodedata.name(c, "").startswith(_SYLLABIC) for c in text)


def mask_word(word: str) -> str:
    """One name word: its first character and a star for each other one.

    Words of one or two characters are all stars: ``Li`` → ``**``, ``王`` → ``*``
    (showing "the first character" of a one-character word would show all of it).
    """
    n = len(word)
    return "*" * n if n <= 2 else word[0] + "*" * (n - 1)


def mask_name(name: str) -> str:
    """``Musterfrau`` → ``M*********``: enough for staff to compare, not to identify."""
    words = unicodedata.normalize("NFC", name).replace("<", " ").split()
    return " ".join(mask_word(w) for w in words)


def _name_part(nam: Mapping[str, Any], native: str, icao: str) -> str:
    """The form of one name component to mask: the printed name, or its ICAO 9303
    transliteration when the printed one is written in ideographs or syllables (a CJK
    given name of one or two characters would otherwise be half or wholly shown)."""
    shown = str(nam.get(native) or "")
    translit = str(nam.get(icao) or "")
    return translit if not shown or (translit and _syllabic(shown)) else shown


def masked_display(dgc: Mapping[str, Any]) -> str:
    """``B**** A*****, 1974``: masked family and given names and the year of birth only."""
    nam = dgc.get("nam") if isinstance(dgc.get("nam"), Mapping) else {}
    fn = _name_part(nam, "fn", "fnt")
    gn = _name_part(nam, "gn", "gnt")
    dob = str(dgc.get("dob") or "")
    name = " ".join(p for p in (mask_name(fn), mask_name(gn)) if p)
    return f"{name}, {dob[:4]}" if dob[:4].isdigit() else name


def holder_pseudonym(dgc: Mapping[str, Any], key: bytes) -> str:
    """The holder's keyed pseudonym (``identity.identity_pseudonym`` of ``fnt``, ``gnt``
    and ``dob``): counts repeat refusals and matches the holder's ID document."""
    nam = dgc.get("nam") if isinstance(dgc.get("nam"), Mapping) else {}
    return identity_pseudonym(
        str(nam.get("fnt", "")), str(nam.get("gnt", "")), str(dgc.get("dob", "")), key
    )


def revocation_keys(entry: Mapping[str, Any], cose: CoseSign1, issuer: str = "") -> tuple[str, ...]:
    """The EU DCC revocation hashes of one certificate, as ``TYPE:hex``.

    Each is the first 16 bytes (128 bits) of a SHA-256, lower-case hex (EU DCC revocation
    list format, hash types per the DCC revocation specification):

    - ``UCI:``            SHA-256(UCI)                 the ``ci`` field, UTF-8, as printed
    - ``COUNTRYCODEUCI:`` SHA-256(country + UCI)       issuing country: CWT ``iss``, else ``co``
    - ``SIGNATURE:``      SHA-256(signature)           ES256: the 32-byte ``r`` half only;
                                                       PS256: the whole signature
    """
    uci = str(entry.get("ci", ""))
    country = issuer or str(entry.get("co", ""))
    sig = _ecdsa_r(cose.signature) if cose.alg in ECDSA_ALGS else cose.signature

    def h(b: bytes) -> str:
        return hashlib.sha256(b).digest()[:16].hex()

    return (
        f"UCI:{h(uci.encode())}",
        f"COUNTRYCODEUCI:{h((country + uci).encode())}",
        f"SIGNATURE:{h(sig)}",
    )


def to_credential(
    cose: CoseSign1, claims: Mapping[Any, Any], signer: Signer, *, pseudonym_key: bytes = b""
) -> Credential:
    """Minimize a verified, schema-checked DCC into the fields a decision needs."""
    t, entry = validate_payload(claims)
    dgc = claims[CWT_HCERT][1]
    vac = test = rec = None
    if t == "v":
        kind = CredentialKind.DCC_VACCINATION
        vac = Vaccination(
            dose_number=dose(entry["dn"], "v.dn"),
            series_doses=dose(entry["sd"], "v.sd"),
            vaccinated_on=to_date(entry["dt"], "v.dt"),
            product=str(entry.get("mp", "")),
            disease=str(entry.get("tg", "")),
        )
    elif t == "t":
        kind = CredentialKind.DCC_TEST
        test = TestResult(
            test_type=entry["tt"],
            sampled_at=to_datetime(entry["sc"], "t.sc"),
            not_detected=entry["tr"] == TEST_NOT_DETECTED,
            disease=str(entry.get("tg", "")),
        )
    else:
        kind = CredentialKind.DCC_RECOVERY
        rec = Recovery(
            first_positive_on=to_date(entry["fr"], "r.fr"),
            valid_from=to_date(entry["df"], "r.df"),
            valid_until=to_date(entry["du"], "r.du"),
            disease=str(entry.get("tg", "")),
        )
    iat, exp, iss = claims.get(CWT_IAT), claims.get(CWT_EXP), claims.get(CWT_ISS)
    issuer = iss if isinstance(iss, str) else ""
    return Credential(
        kind=kind,
        issuer_kid=signer.kid.hex(),
        issuer_country=issuer,
        issued_at=datetime.fromtimestamp(iat, UTC) if _is_time(iat) else None,
        expires_at=datetime.fromtimestamp(exp, UTC) if _is_time(exp) else None,
        vaccination=vac,
        test=test,
        recovery=rec,
        holder_pseudonym=holder_pseudonym(dgc, pseudonym_key),
        display_name=masked_display(dgc),
        revocation_keys=revocation_keys(entry, cose, issuer),
    )


def _is_time(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and abs(v) < 2**40


def aware(now: datetime) -> datetime:
    """A naive ``now`` is UTC (some published vectors give naive validation clocks)."""
    return now if now.tzinfo else now.replace(tzinfo=UTC)


def check_times(
    claims: Mapping[Any, Any], now: datetime, skew: timedelta, *, require: bool = False
) -> None:
    """CWT ``exp`` and ``iat`` at ``now`` (RFC 8392 §3.1.4, §3.1.6).

    ``iat`` later than ``now`` + ``skew`` is NOT_YET_VALID: a certificate cannot be shown
    before it was issued (published vector common/CO16 expects the same).  With
    ``require`` both claims must be present (DCC Vol. 3 §2.6.3 makes them mandatory).
    """
    exp, iat = claims.get(CWT_EXP), claims.get(CWT_IAT)
    for v, name in ((exp, "exp"), (iat, "iat")):
        if v is None and require:
            raise MalformedCredential(ReasonCode.SCHEMA_INVALID, f"CWT {name} missing")
        if v is not None and not _is_time(v):
            raise MalformedCredential(ReasonCode.MALFORMED, f"CWT {name} not a time")
    ts = aware(now).timestamp()
    if exp is not None and ts > exp + skew.total_seconds():
        raise ValidityError(ReasonCode.EXPIRED, "certificate expired")
    if iat is not None and ts + skew.total_seconds() < iat:
        raise ValidityError(ReasonCode.NOT_YET_VALID, "issued in the future")


# --- the whole chain, step by step -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Step:
    """One step of the chain: ok, or the reason it failed."""

    name: str
    ok: bool
    reason: ReasonCode | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ChainReport:
    steps: tuple[Step, ...]
    credential: Credential | None
    error: CredentialError | None


def verify_steps(
    text: str,
    trust: TrustList,
    now: datetime,
    *,
    pseudonym_key: bytes = b"",
    skew: timedelta = timedelta(minutes=5),
) -> ChainReport:
    """The whole chain with every step recorded; never raises."""
    now = aware(now)
    steps: list[Step] = []
    state: dict[str, Any] = {}

    def run(name: str, fn: Any) -> None:
        try:
            fn()
        except CredentialError as exc:
            steps.append(Step(name, False, exc.reason, exc.detail))
            raise
        except Exception as exc:  # a decoder bug must become a refusal, never a crash
            err = MalformedCredential(ReasonCode.MALFORMED, f"{type(exc).__name__}: {exc}")
            steps.append(Step(name, False, err.reason, err.detail))
            raise err from None
        steps.append(Step(name, True))

    def _signer() -> None:
        if len(trust) == 0:
            raise SignatureError(ReasonCode.NO_TRUST_DATA, "trust list is empty")
        if state["cose"].kid is None:
            raise SignatureError(ReasonCode.UNKNOWN_SIGNER, "no kid in COSE headers")
        if not trust.lookup(state["cose"].kid):
            raise SignatureError(ReasonCode.UNKNOWN_SIGNER, f"kid {state['cose'].kid.hex()}")

    chain = [
        ("unprefix", lambda: state.__setitem__("b45", unprefix(text))),
        ("base45", lambda: state.__setitem__("z", b45decode(state["b45"]))),
        ("zlib", lambda: state.__setitem__("raw", inflate(state["z"]))),
        ("cose", lambda: state.__setitem__("cose", decode_cose(state["raw"]))),
        ("cwt", lambda: state.__setitem__("claims", decode_claims(state["cose"].payload))),
        ("signer", _signer),
        ("signature", lambda: state.__setitem__("signer", find_signer(state["cose"], trust))),
        ("signer-validity", lambda: check_signer_validity(state["signer"], now)),
        ("key-usage", lambda: check_key_usage(state["signer"], hcert(state["claims"])[0])),
        ("times", lambda: check_times(state["claims"], now, skew)),
        (
            "schema",
            lambda: state.__setitem__(
                "cred",
                to_credential(
                    state["cose"], state["claims"], state["signer"], pseudonym_key=pseudonym_key
                ),
            ),
        ),
    ]
    try:
        for name, fn in chain:
            run(name, fn)
    except CredentialError as exc:
        return ChainReport(tuple(steps), None, exc)
    return ChainReport(tuple(steps), state["cred"], None)


def verify(
    text: str,
    trust: TrustList,
    now: datetime,
    *,
    pseudonym_key: bytes = b"",
    skew: timedelta = timedelta(minutes=5),
) -> Credential:
    """The whole chain: QR text → verified, minimized Credential, or CredentialError."""
    report = verify_steps(text, trust, now, pseudonym_key=pseudonym_key, skew=skew)
    if report.error is not None:
        raise report.error
    assert report.credential is not None
    return report.credential

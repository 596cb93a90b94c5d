"""Signer certificates from the trust lists authorities publish, checked before they ship.

``sentinel publish build --signers SRC`` takes, for each SRC:

- the EU DCC Gateway (DGCG) trust list JSON: an array of entries ``{"kid", "timestamp",
  "country", "certificateType", "thumbprint", "signature", "rawData"}`` (dgc-gateway
  ``TrustListDto``; ``rawData`` is the base64 DER, or PEM), also wrapped as
  ``{"certificates": [...]}`` and with a signature line before the JSON as national
  backends serve it (e.g. the German DSC list: ``<base64 signature>\\n{...}``);
- Sentinel's own trust-list JSON (``{"signers": [...]}``);
- a PEM file (one or many certificates) or a DER file;
- a folder of any of these, nested, symlinks followed once (``*.pem *.crt *.cer *.der
  *.json``).

Each certificate is checked (RFC 5280): it parses, is a document signer and not a CA
(``basicConstraints cA`` false or absent), its key usage, when present, allows
``digitalSignature`` (§4.2.1.3), its key is EC or RSA, it has not expired at ``now``,
and a DGCG entry's ``thumbprint`` (SHA-256 of the DER) and ``kid`` match the certificate.
Entries of other ``certificateType`` (CSCA, UPLOAD, AUTHENTICATION) are not signers.
What is left out is reported with the reason; the DCC key-usage OIDs (test, vaccination,
recovery) stay in the certificate and the device enforces them per certificate type.

The DGCG ``signature`` (a CMS signature by the country's upload certificate) is not
verified here: the importing authority vouches for its source, and the bundle it builds
is signed with its own root key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from sentinel.credentials.folders import walk
from sentinel.credentials.trustlist import Signer, TrustList, kid_of
from sentinel.errors import ConfigError

SUFFIXES = frozenset({".pem", ".crt", ".cer", ".der", ".json"})
MAX_FILE_BYTES = 32 * 1024 * 1024


@dataclass(slots=True)
class Imported:
    """Signers accepted, and one line per certificate or entry left out."""

    signers: list[Signer] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def trust_list(self) -> TrustList:
        return TrustList(self.signers)


def _country(cert: x509.Certificate, given: str = "") -> str:
    if given:
        return given
    attrs = cert.subject.get_attributes_for_oid(x509.NameOID.COUNTRY_NAME)
    return str(attrs[0].value) if attrs else ""


def check_certificate(cert: x509.Certificate, now: datetime) -> str:
    """Why ``cert`` cannot be a document signer at ``now`` ("" when it can)."""
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        return f"key type {type(key).__name__} is neither EC nor RSA"
    if cert.not_valid_after_utc < now:
        return f"expired {cert.not_valid_after_utc:%Y-%m-%d}"
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        if bc.ca:
            return "a CA certificate (basicConstraints cA), not a document signer"
    except x509.ExtensionNotFound:
        pass
    except ValueError as exc:
        return f"unreadable basicConstraints: {exc}"
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        if not ku.digital_signature:
            return "key usage does not allow digitalSignature (RFC 5280 §4.2.1.3)"
    except x509.ExtensionNotFound:
        pass
    except ValueError as exc:
        return f"unreadable key usage: {exc}"
    return ""


def _add(out: Imported, seen: set[bytes], cert: x509.Certificate, where: str, now: datetime,
         *, country: str = "", kid: bytes | None = None) -> None:  # fmt: skip
    der = cert.public_bytes(Encoding.DER)
    why = check_certificate(cert, now)
    if why:
        out.notes.append(f"{where}: left out: {why}")
        return
    if kid is not None and kid != kid_of(der):
        out.notes.append(f"{where}: left out: kid {kid.hex()} is not the certificate's")
        return
    if der in seen:
        return
    seen.add(der)
    out.signers.append(Signer(kid_of(der), _country(cert, country), cert))


def _raw_certificate(raw: Any) -> x509.Certificate:
    if not isinstance(raw, str) or not raw:
        raise ValueError("rawData missing")
    if "BEGIN CERTIFICATE" in raw:
        return x509.load_pem_x509_certificate(raw.encode())
    return x509.load_der_x509_certificate(base64.b64decode(raw, validate=True))


def _dgcg_entries(doc: Any) -> list[Any] | None:
    if isinstance(doc, list):
        return doc
    if isinstance(doc, Mapping) and isinstance(doc.get("certificates"), list):
        return doc["certificates"]
    return None


def _import_dgcg(
    entries: list[Any], where: str, now: datetime, out: Imported, seen: set[bytes]
) -> None:
    for i, e in enumerate(entries):
        at = f"{where}[{i}]"
        if not isinstance(e, Mapping):
            out.notes.append(f"{at}: left out: not an object")
            continue
        ctype = str(e.get("certificateType", "DSC")).upper()
        if ctype != "DSC":
            out.notes.append(f"{at}: left out: certificateType {ctype} is not a signer")
            continue
        try:
            cert = _raw_certificate(e.get("rawData"))
            kid = base64.b64decode(e["kid"], validate=True) if e.get("kid") else None
        except (ValueError, binascii.Error, TypeError) as exc:
            out.notes.append(f"{at}: left out: {exc}")
            continue
        thumb = e.get("thumbprint")
        der = cert.public_bytes(Encoding.DER)
        if isinstance(thumb, str) and thumb.lower() != hashlib.sha256(der).hexdigest():
            out.notes.append(f"{at}: left out: thumbprint does not match the certificate")
            continue
        _add(out, seen, cert, at, now, country=str(e.get("country") or ""), kid=kid)


def _json_body(data: bytes) -> Any:
    """JSON, or JSON after a first line holding the list's signature (national backends)."""
    text = data.decode("utf-8-sig")
    stripped = text.lstrip()
    if stripped[:1] in ("[", "{"):
        return json.loads(stripped)
    first, _, rest = stripped.partition("\n")
    if rest.lstrip()[:1] in ("[", "{"):
        return json.loads(rest)
    raise ValueError("not JSON")


def _import_file(p: Path, now: datetime, out: Imported, seen: set[bytes]) -> None:
    try:
        if p.stat().st_size > MAX_FILE_BYTES:
            raise ConfigError(f"{p}: larger than {MAX_FILE_BYTES} bytes")
        data = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read signers: {exc.strerror}") from None
    try:
        doc = _json_body(data)
    except (ValueError, UnicodeDecodeError):
        doc = None
    if doc is None and b"-----BEGIN CERTIFICATE" in data:
        try:
            certs = x509.load_pem_x509_certificates(data)
        except ValueError as exc:
            raise ConfigError(f"{p}: not PEM certificates: {exc}") from None
        for i, c in enumerate(certs):
            _add(out, seen, c, f"{p}#{i}", now)
        return
    if doc is None:
        try:
            cert = x509.load_der_x509_certificate(data)
        except ValueError as exc:
            raise ConfigError(f"{p}: not a certificate or trust list: {exc}") from None
        _add(out, seen, cert, str(p), now)
        return
    if isinstance(doc, Mapping) and "signers" in doc:
        for s in TrustList.from_json_bytes(json.dumps(doc).encode(), str(p)):
            _add(out, seen, s.certificate, str(p), now, country=s.country)
        return
    entries = _dgcg_entries(doc)
    if entries is None:
        raise ConfigError(f"{p}: JSON is neither a DGCG trust list nor a Sentinel trust list")
    _import_dgcg(entries, str(p), now, out, seen)


def import_signers(sources: Iterable[str | Path], now: datetime | None = None) -> Imported:
    """Read every source (file or folder); ConfigError for an unreadable or empty one."""
    when = now or datetime.now(UTC)
    srcs = list(sources)
    out, seen = Imported(), set[bytes]()
    for src in srcs:
        p = Path(src)
        if p.is_dir():
            w = walk(p, SUFFIXES)
            out.notes += w.notes
            if not w.files:
                raise ConfigError(f"{p}: no certificate or trust-list files in this folder")
            for f in w.files:
                _import_file(f, when, out, seen)
        else:
            _import_file(p, when, out, seen)
    if not out.signers:
        raise ConfigError("no usable signer certificate in " + ", ".join(map(str, srcs)))
    return out

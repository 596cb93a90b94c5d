"""The authority's publisher: status records, signers, revocations, rules → a bundle directory.

Output directory (serve it with any static HTTP server, object store or CDN, or copy it to
a USB stick)::

    manifest.json            the latest signed manifest
    root_pub.pem             the signing root public key (pin it by its SHA-256 fingerprint)
    manifests/<version>.json every manifest published (history)
    parts/<sha256>           content-addressed parts, immutable (cache them forever)
    index.json               publisher bookkeeping: where each version's full status set is

Raw document numbers exist only here, in the input CSV: the publisher turns each into a
truncated HMAC under the bundle lineage's status key before anything is written.
"""

from __future__ import annotations

import array
import base64
import csv
import hashlib
import io
import json
import os
import secrets
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from sentinel.credentials.trustlist import Signer, TrustList, kid_of
from sentinel.errors import ConfigError
from sentinel.trust import bundle as bm
from sentinel.trust import statusset as ss
from sentinel.trust.sync import MANIFEST

STATUS_KEY_BYTES = 32


@dataclass(frozen=True, slots=True)
class StatusRecord:
    """One authority-side record: a document (type, country, number) or a subject id."""

    status: str
    valid_until: datetime
    doc_type: str = ""
    country: str = ""
    number: str = ""
    subject_id: str = ""

    def identity(self) -> bytes:
        if self.subject_id:
            return ss.normalize_subject(self.subject_id)
        if not self.number:
            raise ConfigError("status record has neither a document number nor a subject_id")
        return ss.normalize_document(self.doc_type, self.country, self.number)


@dataclass(slots=True)
class Inputs:
    """What goes into a bundle.  ``status`` None: no status set in this bundle."""

    status: Iterable[StatusRecord] | None = None
    signers: TrustList | None = None
    revocations: Iterable[str] | None = None
    rules: bytes | None = None
    extra_parts: Mapping[str, bytes] = field(default_factory=dict)


# ---- keys -------------------------------------------------------------------------


def generate_root_key(alg: str = "ed25519") -> bm.PrivateKey:
    if alg == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if alg in ("p256", "ecdsa"):
        return ec.generate_private_key(ec.SECP256R1())
    raise ConfigError(f"unknown root key algorithm {alg!r} (ed25519 or p256)")


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_root_key(key: bm.PrivateKey, private_path: Path, public_path: Path) -> None:
    """Private key PEM (mode 0600) and the public PEM a device pins at provisioning."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_private(private_path, pem)
    _atomic_write(public_path, bm.public_pem(key))


def load_private_key(path: str | Path) -> bm.PrivateKey:
    p = Path(path)
    try:
        key = serialization.load_pem_private_key(p.read_bytes(), password=None)
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read root key: {exc.strerror}") from None
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{p}: not a PEM private key: {exc}") from None
    if isinstance(key, ed25519.Ed25519PrivateKey) or (
        isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1)
    ):
        return key
    raise ConfigError(f"{p}: root key must be Ed25519 or ECDSA P-256")


# ---- inputs -----------------------------------------------------------------------


def _parse_until(text: str, cache: dict[str, int], where: str) -> int:
    hit = cache.get(text)
    if hit is not None:
        return hit
    try:
        t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{where}: valid_until {text!r} is not an ISO date/time") from None
    if t.tzinfo is None:  # a bare date or time: UTC, end of that day for a bare date
        t = t.replace(tzinfo=UTC)
        if len(text.strip()) == 10:
            t += timedelta(days=1, seconds=-1)
    cache[text] = v = ss.to_epoch(t)
    return v


def read_status_csv(path: str | Path) -> Iterator[tuple[bytes, int, int]]:
    """(identity, status code, valid-until epoch) per row of a status CSV.

    Columns (header row required): ``doc_type,country,number,status,valid_until`` and,
    for health-code subjects, ``subject_id`` (then doc_type/country/number stay empty).
    """
    p = Path(path)
    cache: dict[str, int] = {}
    try:
        f = p.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read status CSV: {exc.strerror}") from None
    with f:
        reader = csv.reader(f)
        header = [h.strip().lower() for h in next(reader, [])]
        col = {name: i for i, name in enumerate(header)}
        if not {"status", "valid_until"} <= col.keys() or not (
            {"number", "subject_id"} & col.keys()
        ):
            raise ConfigError(
                f"{p}: status CSV needs columns doc_type,country,number,status,valid_until "
                "(or subject_id,status,valid_until)"
            )
        width = len(header)
        i_st, i_vu = col["status"], col["valid_until"]
        i_dt, i_co = col.get("doc_type"), col.get("country")
        i_no, i_su = col.get("number"), col.get("subject_id")
        codes = ss.STATUS_CODES
        for line, row in enumerate(reader, start=2):
            if len(row) < width:
                row += [""] * (width - len(row))
            code = codes.get(row[i_st].strip().lower())
            if code is None:
                raise ConfigError(f"{p}:{line}: status must be green, yellow or red")
            subj = row[i_su].strip() if i_su is not None else ""
            number = row[i_no] if i_no is not None else ""
            if subj:
                ident = ss.normalize_subject(subj)
            elif number.strip():
                ident = ss.normalize_document(
                    row[i_dt] if i_dt is not None else "",
                    row[i_co] if i_co is not None else "",
                    number,
                )
            else:
                raise ConfigError(f"{p}:{line}: row has neither number nor subject_id")
            yield ident, code, _parse_until(row[i_vu], cache, f"{p}:{line}")


def records_to_rows(records: Iterable[StatusRecord]) -> Iterator[tuple[bytes, int, int]]:
    for r in records:
        code = ss.STATUS_CODES.get(r.status.lower())
        if code is None:
            raise ConfigError(f"status must be green, yellow or red, not {r.status!r}")
        yield r.identity(), code, ss.to_epoch(r.valid_until)


def hash_rows(rows: Iterable[tuple[bytes, int, int]], hmac_key: bytes) -> ss.Columns:
    """Keyed-hash every identity and sort: the status set the device will hold."""
    keys = bytearray()
    status = bytearray()
    until = array.array("I")
    for ident, code, vu in rows:
        keys += ss.entry_key(hmac_key, ident)
        status.append(code)
        until.append(vu)
    k = np.frombuffer(bytes(keys), dtype=f"S{ss.KEY_BYTES}")
    s = np.frombuffer(bytes(status), dtype=np.uint8)
    u = np.frombuffer(until.tobytes(), dtype=np.uint32).astype("<u4")
    return ss.Columns.from_arrays(k, s, u, ss.KIND_FULL)


def load_signers(paths: Iterable[str | Path]) -> TrustList:
    """Signer certificates from trust-list JSON files, PEM or DER certificate files."""
    signers: list[Signer] = []
    for path in paths:
        p = Path(path)
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{p}: cannot read signers: {exc.strerror}") from None
        if data.lstrip().startswith(b"{"):
            signers.extend(TrustList.from_json_bytes(data, str(p)))
            continue
        try:
            if b"-----BEGIN CERTIFICATE" in data:
                certs = x509.load_pem_x509_certificates(data)
            else:
                certs = [x509.load_der_x509_certificate(data)]
        except ValueError as exc:
            raise ConfigError(f"{p}: not a certificate or trust list: {exc}") from None
        for c in certs:
            der = c.public_bytes(serialization.Encoding.DER)
            attrs = c.subject.get_attributes_for_oid(x509.NameOID.COUNTRY_NAME)
            country = str(attrs[0].value) if attrs else ""
            signers.append(Signer(kid_of(der), country, c))
    return TrustList(signers)


def load_revocations(path: str | Path) -> list[str]:
    """Revocation keys: a JSON list / {"keys": [...]} or one ``UCI:<hex>`` per line."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read revocations: {exc.strerror}") from None
    if text.lstrip().startswith(("[", "{")):
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"{p}: not JSON: {exc}") from None
        keys = doc["keys"] if isinstance(doc, dict) else doc
    else:
        keys = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    out = []
    for k in keys:
        kind, _, hexpart = str(k).partition(":")
        if kind not in ("UCI", "COUNTRYCODEUCI", "SIGNATURE") or not hexpart:
            raise ConfigError(f"{p}: revocation key {k!r} is not UCI:/COUNTRYCODEUCI:/SIGNATURE:")
        try:
            bytes.fromhex(hexpart)
        except ValueError:
            raise ConfigError(f"{p}: revocation key {k!r} is not hex") from None
        out.append(f"{kind}:{hexpart.lower()}")
    return out


# ---- output -----------------------------------------------------------------------


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _put_part(out: Path, name: str, data: bytes) -> bm.PartRef:
    sha = hashlib.sha256(data).hexdigest()
    dest = out / "parts" / sha
    if not dest.exists():
        _atomic_write(dest, data)
    return bm.PartRef(name, sha, len(data))


def _put_status(out: Path, name: str, cols: ss.Columns, kid: bytes) -> bm.PartRef:
    (out / "parts").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out) as td:
        raw = Path(td) / "raw"
        with raw.open("wb") as f:
            cols.write(f, kid)
        raw_sha, raw_size = _file_sha(raw)
        z = Path(td) / "z"
        ss.compress_to(raw, z)
        sha, size = _file_sha(z)
        dest = out / "parts" / sha
        if not dest.exists():
            os.chmod(z, 0o644)
            os.replace(z, dest)
    return bm.PartRef(name, sha, size, bm.ZLIB, raw_size, raw_sha)


def _file_sha(p: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    n = 0
    with p.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
            n += len(chunk)
    return h.hexdigest(), n


def _read_index(out: Path) -> dict[str, Any]:
    p = out / "index.json"
    if not p.exists():
        return {"latest": None, "versions": {}}
    return json.loads(p.read_text())


def _load_status_part(out: Path, ref: Mapping[str, Any]) -> ss.Columns:
    with tempfile.TemporaryDirectory(dir=out) as td:
        raw = Path(td) / "raw"
        ss.decompress_to(
            out / "parts" / ref["sha256"], raw, int(ref["raw_size"]), str(ref["raw_sha256"])
        )
        data = raw.read_bytes()
    return ss.columns_from_bytes(data, len(data))


def _previous_manifest(out: Path, version: int) -> bm.Manifest:
    raw = (out / "manifests" / f"{version}.json").read_bytes()
    return bm.parse_stored(raw)


@dataclass(frozen=True, slots=True)
class Published:
    manifest: bm.Manifest
    out_dir: Path
    delta_entries: int | None


def publish(
    out_dir: str | Path,
    inputs: Inputs,
    keys: Sequence[bm.PrivateKey],
    *,
    now: datetime | None = None,
    version: int | None = None,
    expires_in: timedelta = timedelta(days=7),
    delta: bool = True,
    delta_only: bool = False,
    rotate_status_key: bool = False,
    next_root_key: bm.PublicKey | None = None,
    status_rows: Iterable[tuple[bytes, int, int]] | None = None,
    carry: bool = False,
) -> Published:
    """Build and sign one bundle version into ``out_dir``; return its manifest.

    With ``delta`` (and a previous version with the same status key) the manifest also
    carries ``status_delta`` from the previous version; ``delta_only`` leaves the full
    status part out of the manifest (smaller USB copies; devices must be on the base).
    ``carry``: parts (and the status set) not given keep the previous version's bytes.
    """
    if not keys:
        raise ConfigError("publish needs at least one root signing key")
    now = now or datetime.now(UTC)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    index = _read_index(out)
    prev_v = index["latest"]
    prev = index["versions"].get(str(prev_v)) if prev_v is not None else None
    if version is None:
        version = (prev_v or 0) + 1
    if prev_v is not None and version <= prev_v:
        raise ConfigError(f"version {version} is not newer than the published {prev_v}")

    parts: list[bm.PartRef] = []
    if inputs.signers is not None:
        parts.append(_put_part(out, "trust_list", inputs.signers.to_json_bytes()))
    if inputs.revocations is not None:
        revs = sorted(set(inputs.revocations))
        body = json.dumps({"keys": revs}, separators=(",", ":")).encode()
        parts.append(_put_part(out, "revocations", body))
    if inputs.rules is not None:
        try:
            json.loads(inputs.rules)
        except ValueError as exc:
            raise ConfigError(f"rules are not JSON: {exc}") from None
        parts.append(_put_part(out, "rules", inputs.rules))
    for name, data in sorted(inputs.extra_parts.items()):
        if name in ("trust_list", "revocations", "rules", "status", "status_delta") or not (
            name.replace("_", "").isalnum()
        ):
            raise ConfigError(f"extra part name {name!r} is reserved or not [A-Za-z0-9_]")
        parts.append(_put_part(out, name, data))

    status_info = None
    delta_base = None
    delta_entries = None
    entry: dict[str, Any] = {}
    rows = status_rows
    if rows is None and inputs.status is not None:
        rows = records_to_rows(inputs.status)
    if rows is not None:
        if prev and prev.get("status_key") and not rotate_status_key:
            hkey = base64.b64decode(prev["status_key"])
        else:
            hkey = secrets.token_bytes(STATUS_KEY_BYTES)
        kid = ss.key_id(hkey)
        cols = hash_rows(rows, hkey)
        full = _put_status(out, "status", cols, kid)
        status_info = bm.StatusInfo(hkey, len(cols), full.raw_sha256, full.raw_size)
        entry = {
            "status_key": base64.b64encode(hkey).decode(),
            "status_part": {
                "sha256": full.sha256,
                "raw_size": full.raw_size,
                "raw_sha256": full.raw_sha256,
            },
        }
        same_key = prev is not None and prev.get("status_key") == entry["status_key"]
        if delta and same_key and prev is not None and prev.get("status_part"):
            old = _load_status_part(out, prev["status_part"])
            d = ss.diff(old, cols)
            del old
            parts.append(_put_status(out, "status_delta", d, kid))
            delta_base = int(prev_v)
            delta_entries = len(d)
        elif delta_only:
            raise ConfigError("delta_only needs a previous version with the same status key")
        if not (delta_only and delta_base is not None):
            parts.append(full)

    if carry and prev_v is not None:
        # parts not given this time stay as they were (same hash: devices download nothing)
        old_m = _previous_manifest(out, int(prev_v))
        names = {p.name for p in parts}
        for name, ref in old_m.parts.items():
            if name == "status_delta" or name in names:
                continue
            if name == "status":
                if rows is not None or old_m.status is None:
                    continue
                status_info = old_m.status
                entry = dict(prev or {})
            parts.append(ref)

    primary = keys[0]
    payload = bm.make_payload(
        version=version,
        issued_at=now,
        expires_at=now + expires_in,
        authority_key_id=bm.key_id(primary),
        parts=parts,
        status=status_info,
        delta_base=delta_base,
        next_root_key=bm.public_pem(next_root_key) if next_root_key is not None else None,
    )
    raw = bm.sign_manifest(payload, keys)
    _atomic_write(out / "manifests" / f"{version}.json", raw)
    index["versions"][str(version)] = entry
    index["latest"] = version
    _atomic_write(out / "index.json", json.dumps(index, indent=1).encode())
    # the root public key beside the bundle, for installers that pin it by fingerprint
    _atomic_write(out / "root_pub.pem", bm.public_pem(primary))
    _atomic_write(out / MANIFEST, raw)  # last: the new version goes live
    m = bm.verify_manifest(raw, [k.public_key() for k in keys], now)
    return Published(m, out, delta_entries)


def publish_demo(out_dir: str | Path, *, now: datetime | None = None) -> dict[str, Path]:
    """A demo authority: root key, a DCC signer, demo status entries, version 1 published.

    Layout: ``authority/root_key.pem`` (keep secret), ``root_pub.pem`` (pin on devices),
    ``signer_key.pem`` + ``signer_cert.pem`` (issue demo certificates), ``site/`` (serve it
    or ``sentinel sync --from site``), ``status.csv`` (the authority-side input).
    """
    from sentinel.authority import dcc_issue as di

    now = now or datetime.now(UTC)
    out = Path(out_dir)
    root = generate_root_key()
    write_root_key(root, out / "authority" / "root_key.pem", out / "root_pub.pem")
    signer = di.make_signer("XX", common_name="Sentinel Demo DSC")
    _write_private(
        out / "signer_key.pem",
        signer.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    _atomic_write(
        out / "signer_cert.pem", signer.certificate.public_bytes(serialization.Encoding.PEM)
    )
    until = (now + timedelta(days=30)).date().isoformat()
    rows = [
        ("P", "XXA", "C01X00T47", "green", until, ""),
        ("I", "XXA", "L01X00T47", "yellow", until, ""),
        ("P", "XXA", "X12345678", "red", until, ""),
        ("", "", "", "green", until, "demo-subject-1"),
        ("", "", "", "red", until, "demo-subject-2"),
    ]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["doc_type", "country", "number", "status", "valid_until", "subject_id"])
    w.writerows(rows)
    _write_private(out / "status.csv", buf.getvalue().encode())  # raw numbers: 0600
    rules = json.dumps({"venue_rules": [], "note": "demo rules"}).encode()
    publish(
        out / "site",
        Inputs(
            signers=TrustList.from_certificates([signer.der], country="XX"),
            revocations=[],
            rules=rules,
        ),
        [root],
        now=now,
        expires_in=timedelta(days=30),
        status_rows=read_status_csv(out / "status.csv"),
    )
    return {
        "root_pub": out / "root_pub.pem",
        "root_key": out / "authority" / "root_key.pem",
        "site": out / "site",
        "signer_key": out / "signer_key.pem",
        "signer_cert": out / "signer_cert.pem",
    }

"""The authority's publisher: status records, signers, revocations, rules → a bundle directory.

Output directory (serve it with any static HTTP server, object store or CDN, or copy it to
a USB stick)::

    manifest.json            the latest signed manifest
    root_pub.pem             the signing root public key (pin it by its SHA-256 fingerprint)
    manifests/<version>.json every manifest published (history)
    parts/<sha256>           content-addressed parts, immutable (cache them forever)
    index.json               publisher bookkeeping: where each version's full status set is

Nothing secret is written there: the status key and the tag cache stay in the private
state directory (``status.py``; default ``<site>.authority/``), and the key reaches the
devices only sealed to each one's enrolled seal key (part ``status_keys``).  Raw document
numbers exist only in the input CSV: each becomes a lookup tag before anything is written.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519

from sentinel.authority import arrowin, setbuild
from sentinel.authority import status as st
from sentinel.authority.inputs import Chunk
from sentinel.credentials.trustlist import TrustList
from sentinel.errors import BundleError, ConfigError
from sentinel.progress import progress_bar
from sentinel.trust import bundle as bm
from sentinel.trust import sealing
from sentinel.trust import statusset as ss
from sentinel.trust.sync import MANIFEST
from sentinel.trust.timestamp import write_timestamp


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


def records_to_rows(records: Iterable[StatusRecord]) -> Iterator[tuple[bytes, int, int]]:
    for r in records:
        code = ss.STATUS_CODES.get(r.status.lower())
        if code is None:
            raise ConfigError(f"status must be green, yellow or red, not {r.status!r}")
        yield r.identity(), code, ss.to_epoch(r.valid_until)


def load_devices(path: str | Path) -> dict[str, x25519.X25519PublicKey]:
    """Seal keys of the enrolled devices (``sentinel enroll --register`` registry)."""
    import base64

    from sentinel.enroll import EnrollmentError, _load_registry

    try:
        doc = _load_registry(Path(path))
    except EnrollmentError as exc:
        raise ConfigError(str(exc)) from None
    out: dict[str, x25519.X25519PublicKey] = {}
    for device, entry in sorted(doc["devices"].items()):
        raw = entry.get("seal_key") if isinstance(entry, dict) else None
        if not raw:
            continue  # enrolled before seal keys: re-enroll it to receive status keys
        try:
            pub = x25519.X25519PublicKey.from_public_bytes(base64.b64decode(raw, validate=True))
        except ValueError:
            raise ConfigError(f"{path}: device {device}: seal_key is not an X25519 key") from None
        out[sealing.fingerprint(pub)] = pub
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


def _put_status(out: Path, name: str, cols: ss.Columns, kid: bytes) -> tuple[bm.PartRef, str]:
    """The zlib part of a status set or delta; and the set digest of its entries."""
    p = setbuild.write_part(cols, kid, out / "parts")
    return bm.PartRef(name, p.sha256, p.size, bm.ZLIB, p.raw_size, p.raw_sha256), p.set_digest


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
        return ss.WireFile(raw).columns()


def _previous_manifest(out: Path, version: int) -> bm.Manifest:
    raw = (out / "manifests" / f"{version}.json").read_bytes()
    return bm.parse_stored(raw)


def default_state_dir(out_dir: str | Path) -> Path:
    """Where the authority's secrets for a site live unless told: ``<site>.authority/``."""
    out = Path(out_dir).resolve()
    return out.with_name(out.name + ".authority")


@dataclass(frozen=True, slots=True)
class Published:
    manifest: bm.Manifest
    out_dir: Path
    delta_entries: int | None
    new_tags: int = 0  # identities tagged by the KDF in this build (the rest: tag cache)


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
    status_csv: str | Path | None = None,
    carry: bool = False,
    devices: Mapping[str, x25519.X25519PublicKey] | None = None,
    state_dir: str | Path | None = None,
    kdf: Mapping[str, Any] | None = None,
    workers: int = 1,
) -> Published:
    """Build and sign one bundle version into ``out_dir``; return its manifest.

    Status rows come from ``status_csv`` (a CSV, or a Parquet / Arrow IPC file; streamed,
    vectorised), ``status_rows`` or ``inputs.status``.  ``devices`` (seal-key fingerprint →
    X25519 public key, see ``load_devices``) are the enrolled devices the status key is
    sealed to; a status set needs at least one.  With ``delta`` (and a previous version with
    the same status key) the manifest also carries ``status_delta``; ``delta_only`` leaves
    the full status part out (devices must be on the base).  ``carry``: parts (and the
    status set) not given keep the previous version's bytes.  ``kdf``: the tag function
    (default Argon2id); changing it, like ``rotate_status_key``, starts a new key and tags
    every row again.
    """
    if not keys:
        raise ConfigError("publish needs at least one root signing key")
    now = now or datetime.now(UTC)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = Path(state_dir) if state_dir is not None else default_state_dir(out)
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
    reserved = ("trust_list", "revocations", "rules", "status", "status_delta", "status_keys")
    for name, data in sorted(inputs.extra_parts.items()):
        if name in reserved or not name.replace("_", "").isalnum():
            raise ConfigError(f"extra part name {name!r} is reserved or not [A-Za-z0-9_]")
        parts.append(_put_part(out, name, data))

    status_info = None
    delta_base = None
    delta_entries = None
    new_tags = 0
    entry: dict[str, Any] = {}
    chunks: Iterable[Chunk] | None = None
    size, unit = 0, "B"
    table = status_csv is not None and arrowin.is_arrow_input(status_csv)
    if table:  # Parquet / Arrow IPC: a record batch at a time, the bar counts rows
        size, unit = arrowin.row_count(status_csv) or 0, "rows"  # type: ignore[arg-type]
    elif status_csv is not None:
        size = Path(status_csv).stat().st_size if Path(status_csv).exists() else 0
    elif status_rows is not None:
        chunks = st.rows_to_chunks(status_rows)
    elif inputs.status is not None:
        chunks = st.rows_to_chunks(records_to_rows(inputs.status))
    sk: st.StatusKey | None = None
    if chunks is not None or status_csv is not None:
        if devices is None:
            raise ConfigError(
                "a status set needs the enrolled devices its key is sealed to "
                "(--devices devices.json from sentinel enroll --register)"
            )
        sk, _fresh = st.load_or_create_key(state, rotate=rotate_status_key, kdf=kdf)
        with progress_bar(size or None, "read status records", unit) as bar:
            if table:
                assert status_csv is not None
                chunks = arrowin.read_arrow_table(status_csv, bar)
                built = st.build_columns(chunks, sk, state, workers=workers)
            elif status_csv is not None:
                built = st.build_columns_csv(status_csv, sk, state, workers=workers, bar=bar)
            else:
                assert chunks is not None
                built = st.build_columns(chunks, sk, state, workers=workers)
        cols, new_tags = built.columns, built.new_tags
        kid = bytes.fromhex(sk.key_id)
        full, set_digest = _put_status(out, "status", cols, kid)
        status_info = bm.StatusInfo(sk.key_id, dict(sk.kdf), len(cols), set_digest, full.raw_size)
        entry = {
            "key_id": sk.key_id,
            "status_part": {
                "sha256": full.sha256,
                "raw_size": full.raw_size,
                "raw_sha256": full.raw_sha256,
            },
        }
        same_key = prev is not None and prev.get("key_id") == sk.key_id
        if delta and same_key and prev is not None and prev.get("status_part"):
            old = _load_status_part(out, prev["status_part"])
            d = ss.diff(old, cols)
            del old
            parts.append(_put_status(out, "status_delta", d, kid)[0])
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
            if name in ("status", "status_keys"):
                if sk is not None or old_m.status is None:
                    continue
                status_info = old_m.status
                entry = dict(prev or {})
                if name == "status_keys" and devices is not None:
                    continue  # sealed again below, to today's devices
            parts.append(ref)
        if sk is None and status_info is not None and devices is not None:
            sk, _ = st.load_or_create_key(state)
            if sk.key_id != status_info.key_id:
                raise ConfigError("the carried status set uses another status key")
    if status_info is not None and sk is not None:
        if not devices:
            raise ConfigError(
                "no enrolled device with a seal key: nobody could read the status set"
            )
        parts.append(_status_keys_part(out, prev_v, sk, devices))

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
    _atomic_write(out / MANIFEST, raw)  # the new version goes live
    # then the signed timestamp naming it (re-signed by `sentinel publish timestamp`
    # every few hours: devices measure data age from it, docs/security.md D2)
    write_timestamp(out, keys, now=now)
    m = bm.verify_manifest(raw, [k.public_key() for k in keys], now)
    return Published(m, out, delta_entries, new_tags)


def _status_keys_part(
    out: Path, prev_v: int | None, sk: st.StatusKey, devices: Mapping[str, x25519.X25519PublicKey]
) -> bm.PartRef:
    """The previous version's sealed keys when key and devices are unchanged (devices then
    download nothing new), else the key sealed afresh."""
    if prev_v is not None:
        old = _previous_manifest(out, int(prev_v)).parts.get("status_keys")
        if old is not None:
            try:
                doc = sealing.parse_status_keys((out / old.path).read_bytes())
            except (OSError, BundleError):
                doc = None
            if doc and doc["key_id"] == sk.key_id and set(doc["devices"]) == set(devices):
                return old
    return _put_part(out, "status_keys", sealing_part(sk, devices))


def sealing_part(sk: st.StatusKey, devices: Mapping[str, x25519.X25519PublicKey]) -> bytes:
    """The ``status_keys`` part: the status key sealed to each device (``trust/sealing.py``)."""
    import base64

    kid = sk.key_id
    sealed = {
        fp: base64.b64encode(sealing.SUITE.encrypt(sk.key, pub, info=sealing.info(kid))).decode()
        for fp, pub in sorted(devices.items())
    }
    doc = {"format": sealing.FORMAT, "key_id": kid, "devices": sealed}
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def publish_demo(
    out_dir: str | Path, *, now: datetime | None = None, device_data_dir: str | Path | None = None
) -> dict[str, Path]:
    """A demo authority: root key, a DCC signer, demo status entries, version 1 published.

    Layout: ``authority/root_key.pem`` (keep secret), ``root_pub.pem`` (pin on devices),
    ``signer_key.pem`` + ``signer_cert.pem`` (issue demo certificates), ``site/`` (serve it
    or ``sentinel sync --from site``), ``status.csv`` (the authority-side input).  The
    status key is sealed to the seal key of ``device_data_dir`` (made if missing), or to a
    demo device key ``device/device_seal_key.pem`` a demo device copies into its data_dir.
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
    seal_dir = Path(device_data_dir) if device_data_dir is not None else out / "device"
    seal = sealing.load_or_create_seal_key(seal_dir).public_key()
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
        status_csv=out / "status.csv",
        devices={sealing.fingerprint(seal): seal},
        state_dir=out / "authority" / "state",
    )
    return {
        "root_pub": out / "root_pub.pem",
        "root_key": out / "authority" / "root_key.pem",
        "site": out / "site",
        "signer_key": out / "signer_key.pem",
        "signer_cert": out / "signer_cert.pem",
        "device_seal_key": seal_dir / sealing.SEAL_KEY_FILE,
    }

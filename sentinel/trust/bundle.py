"""The signed bundle manifest: format, signing, and every trust decision about it.

Pure: bytes, keys and ``now`` in, a ``Manifest`` or a ``BundleError`` out (the shape of
python-tuf's ``trusted_metadata_set``).  Downloading and the disk live in ``sync.py`` and
``store.py``.  The format is described in ``docs/bundles.md``.

Security properties checked here:
- authenticity: the manifest is signed by a pinned authority root key (Ed25519 or ECDSA
  P-256); the signed bytes are the exact ``signed`` string, no canonicalization needed;
- integrity: every part is named by its SHA-256 and size (checked by the caller);
- freshness: a manifest past ``expires_at`` is refused (freeze attack);
- no rollback: a version lower than the applied one is refused, and the same version
  with a different signed payload too (the envelope around it may differ: D12);
- bounded input: at most ``MAX_MANIFEST_BYTES``, JSON nested at most ``MAX_JSON_DEPTH``
  deep (a deeper document is a BundleFormatError, never a RecursionError: D13);
- deltas apply only onto the exact base version they were made from.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from sentinel.errors import (
    BundleError,
    BundleExpiredError,
    BundleFormatError,
    BundleRollbackError,
    BundleSignatureError,
)
from sentinel.trust.statusset import check_kdf as ss_check_kdf

FORMAT = "sentinel-bundle/2"  # 2: status key sealed to devices, KDF tags (D4)
MAX_MANIFEST_BYTES = 1 << 20
MAX_JSON_DEPTH = 16  # a manifest is 4 deep; the cap keeps json.loads far from recursion
ZLIB = "zlib"

PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey
PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey


def key_id(key: PublicKey | PrivateKey) -> str:
    """SHA-256 (hex) of the DER SubjectPublicKeyInfo of the (public half of the) key."""
    pub = key.public_key() if hasattr(key, "public_key") else key
    der = pub.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def public_pem(key: PublicKey | PrivateKey) -> bytes:
    pub = key.public_key() if hasattr(key, "public_key") else key
    return pub.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_public_key(pem: bytes, source: str = "<root key>") -> PublicKey:
    """An Ed25519 or ECDSA P-256 public key from PEM; BundleFormatError otherwise."""
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise BundleFormatError(f"{source}: not a PEM public key ({exc})") from None
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    raise BundleFormatError(f"{source}: root key must be Ed25519 or ECDSA P-256")


def _sign(key: PrivateKey, data: bytes) -> bytes:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    return key.sign(data, ec.ECDSA(hashes.SHA256()))


def _verify(key: PublicKey, sig: bytes, data: bytes) -> bool:
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(sig, data)
        else:
            key.verify(sig, data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


@dataclass(frozen=True, slots=True)
class PartRef:
    """One content-addressed part: its SHA-256 and size as served."""

    name: str
    sha256: str
    size: int
    encoding: str = ""  # "" raw, "zlib" compressed (status parts)
    raw_size: int = 0
    raw_sha256: str = ""

    @property
    def path(self) -> str:
        return f"parts/{self.sha256}"


@dataclass(frozen=True, slots=True)
class StatusInfo:
    """The status set the bundle describes (after any delta).

    ``key_id`` names the lineage's status key (which travels only sealed to enrolled
    devices, part ``status_keys``), ``kdf`` the tag function, ``sha256`` the set digest
    (over the entries as rows), ``size`` the full set's wire size before compression.
    """

    key_id: str
    kdf: Mapping[str, Any]
    count: int
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class Manifest:
    version: int
    issued_at: datetime
    expires_at: datetime
    authority_key_id: str
    parts: Mapping[str, PartRef]
    status: StatusInfo | None
    delta_base: int | None  # the delta part "status_delta" applies onto this version only
    next_root_key: bytes | None  # PEM of the announced next root key
    raw: bytes  # the envelope as received
    digest: str  # SHA-256 of the signed payload (not of the envelope: D12)
    signed_by: str = ""  # key id of the root key whose signature verified


def _ts(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_ts(v: Any, what: str) -> datetime:
    if not isinstance(v, str):
        raise BundleFormatError(f"manifest: {what} must be a timestamp")
    try:
        t = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise BundleFormatError(f"manifest: {what} is not a timestamp") from None
    if t.tzinfo is None:
        raise BundleFormatError(f"manifest: {what} has no time zone")
    return t


def sign_manifest(payload: Mapping[str, Any], keys: Sequence[PrivateKey]) -> bytes:
    """The signed envelope (publisher side): ``{"signed": "<json>", "signatures": [...]}``."""
    signed = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    sigs = [
        {"keyid": key_id(k), "sig": base64.b64encode(_sign(k, signed.encode())).decode()}
        for k in keys
    ]
    return json.dumps({"signed": signed, "signatures": sigs}, indent=1).encode()


def make_payload(
    *,
    version: int,
    issued_at: datetime,
    expires_at: datetime,
    authority_key_id: str,
    parts: Sequence[PartRef],
    status: StatusInfo | None,
    delta_base: int | None = None,
    next_root_key: bytes | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "format": FORMAT,
        "version": version,
        "issued_at": _ts(issued_at),
        "expires_at": _ts(expires_at),
        "authority_key_id": authority_key_id,
        "parts": {
            p.name: {
                "sha256": p.sha256,
                "size": p.size,
                **(
                    {"encoding": p.encoding, "raw_size": p.raw_size, "raw_sha256": p.raw_sha256}
                    if p.encoding
                    else {}
                ),
            }
            for p in parts
        },
    }
    if status is not None:
        out["status"] = {
            "key_id": status.key_id,
            "kdf": dict(status.kdf),
            "count": status.count,
            "sha256": status.sha256,
            "size": status.size,
        }
    if delta_base is not None:
        out["delta"] = {"base_version": delta_base, "part": "status_delta"}
    if next_root_key is not None:
        out["next_root_key"] = next_root_key.decode()
    return out


def _int(v: Any, what: str) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise BundleFormatError(f"manifest: {what} must be a non-negative integer")
    return v


def _hex64(v: Any, what: str) -> str:
    if not isinstance(v, str) or len(v) != 64 or any(c not in "0123456789abcdef" for c in v):
        raise BundleFormatError(f"manifest: {what} must be a lowercase SHA-256 hex digest")
    return v


_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


def json_depth(data: bytes) -> int:
    """How deep ``data``'s arrays and objects nest (strings skipped; not a validator)."""
    import numpy as np

    bare = np.frombuffer(_STRING.sub(b'""', data), dtype=np.uint8)
    step = np.zeros(len(bare), dtype=np.int32)
    step[(bare == ord("[")) | (bare == ord("{"))] = 1
    step[(bare == ord("]")) | (bare == ord("}"))] = -1
    return int(np.cumsum(step).max(initial=0))


def loads_bounded(data: bytes | str, what: str) -> Any:
    """``json.loads`` of untrusted bytes with a depth cap: BundleFormatError when refused."""
    raw = data.encode() if isinstance(data, str) else data
    if json_depth(raw) > MAX_JSON_DEPTH:
        raise BundleFormatError(f"{what}: JSON nested deeper than {MAX_JSON_DEPTH}")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise BundleFormatError(f"{what} unreadable: {exc}") from None


def _parse_payload(doc: Any, raw: bytes, signed: str) -> Manifest:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise BundleFormatError(f"manifest: format is not {FORMAT}")
    parts: dict[str, PartRef] = {}
    raw_parts = doc.get("parts")
    if not isinstance(raw_parts, dict):
        raise BundleFormatError("manifest: parts must be an object")
    for name, p in raw_parts.items():
        if not isinstance(p, dict) or not name.replace("_", "").isalnum():
            raise BundleFormatError(f"manifest: bad part {name!r}")
        enc = p.get("encoding", "")
        if enc not in ("", ZLIB):
            raise BundleFormatError(f"manifest: part {name}: unknown encoding {enc!r}")
        parts[name] = PartRef(
            name,
            _hex64(p.get("sha256"), f"{name}.sha256"),
            _int(p.get("size"), f"{name}.size"),
            enc,
            _int(p.get("raw_size", 0), f"{name}.raw_size"),
            _hex64(p["raw_sha256"], f"{name}.raw_sha256") if enc else "",
        )
    status = None
    if "status" in doc:
        s = doc["status"]
        if not isinstance(s, dict):
            raise BundleFormatError("manifest: status must be an object")
        if "key" in s:
            raise BundleFormatError("manifest: a status key in clear is refused (D4)")
        kid = s.get("key_id")
        if (
            not isinstance(kid, str)
            or len(kid) != 32
            or any(c not in "0123456789abcdef" for c in kid)
        ):
            raise BundleFormatError("manifest: status.key_id must be 32 lowercase hex digits")
        status = StatusInfo(
            kid,
            ss_check_kdf(s.get("kdf")),
            _int(s.get("count"), "status.count"),
            _hex64(s.get("sha256"), "status.sha256"),
            _int(s.get("size"), "status.size"),
        )
    delta_base = None
    if "delta" in doc:
        d = doc["delta"]
        if not isinstance(d, dict) or d.get("part") != "status_delta":
            raise BundleFormatError("manifest: delta must name the part status_delta")
        delta_base = _int(d.get("base_version"), "delta.base_version")
        if "status_delta" not in parts or status is None:
            raise BundleFormatError("manifest: delta without its part or status")
    if status is not None and not ("status" in parts or delta_base is not None):
        raise BundleFormatError("manifest: status described but no status part")
    if status is not None and "status_keys" not in parts:
        raise BundleFormatError("manifest: status set without its sealed keys (status_keys)")
    nxt = doc.get("next_root_key")
    if nxt is not None:
        if not isinstance(nxt, str):
            raise BundleFormatError("manifest: next_root_key must be a PEM string")
        load_public_key(nxt.encode(), "manifest next_root_key")
    version = _int(doc.get("version"), "version")
    issued = _parse_ts(doc.get("issued_at"), "issued_at")
    expires = _parse_ts(doc.get("expires_at"), "expires_at")
    akid = doc.get("authority_key_id")
    if not isinstance(akid, str):
        raise BundleFormatError("manifest: authority_key_id must be a string")
    return Manifest(
        version=version,
        issued_at=issued,
        expires_at=expires,
        authority_key_id=akid,
        parts=parts,
        status=status,
        delta_base=delta_base,
        next_root_key=nxt.encode() if nxt else None,
        raw=raw,
        digest=hashlib.sha256(signed.encode()).hexdigest(),
    )


def stored_format(raw: bytes) -> str | None:
    """The ``format`` a stored manifest envelope's payload names (None when unreadable):
    tells a bundle applied by an older release from a corrupt one."""
    try:
        doc = loads_bounded(loads_bounded(raw, "stored manifest")["signed"], "payload")
    except (BundleFormatError, KeyError, TypeError):
        return None
    fmt = doc.get("format") if isinstance(doc, dict) else None
    return fmt if isinstance(fmt, str) else None


def is_older_format(fmt: str | None) -> bool:
    """``sentinel-bundle/N`` with N below this release's."""
    prefix, _, n = (fmt or "").rpartition("/")
    mine = int(FORMAT.rpartition("/")[2])
    return prefix == FORMAT.rpartition("/")[0] and n.isdigit() and int(n) < mine


def parse_stored(raw: bytes) -> Manifest:
    """A manifest envelope that was verified when it was stored (the device's store, the
    publisher's history): parsed again, not verified again."""
    signed = loads_bounded(raw, "stored manifest")["signed"]
    return _parse_payload(loads_bounded(signed, "stored manifest payload"), raw, signed)


def verify_manifest(raw: bytes, keys: Sequence[PublicKey], now: datetime) -> Manifest:
    """Parse the envelope and check it is signed by one of ``keys`` and not expired."""
    if len(raw) > MAX_MANIFEST_BYTES:
        raise BundleFormatError(f"manifest larger than {MAX_MANIFEST_BYTES} bytes")
    env = loads_bounded(raw, "manifest envelope")
    try:
        signed = env["signed"]
        sigs = env["signatures"]
        if not isinstance(signed, str) or not isinstance(sigs, list):
            raise TypeError("signed must be a string, signatures a list")
    except (KeyError, TypeError) as exc:
        raise BundleFormatError(f"manifest envelope unreadable: {exc}") from None
    by_id = {key_id(k): k for k in keys}
    ok = ""
    for s in sigs:
        if not isinstance(s, dict):
            continue
        key = by_id.get(str(s.get("keyid", "")))
        if key is None:
            continue
        try:
            sig = base64.b64decode(str(s.get("sig", "")), validate=True)
        except (binascii.Error, ValueError):
            continue
        if _verify(key, sig, signed.encode()):
            ok = key_id(key)
            break
    if not ok:
        raise BundleSignatureError("manifest is not signed by the pinned authority root key")
    doc = loads_bounded(signed, "manifest payload")
    m = dataclasses.replace(_parse_payload(doc, raw, signed), signed_by=ok)
    if now > m.expires_at:
        raise BundleExpiredError(f"bundle version {m.version} expired at {_ts(m.expires_at)}")
    return m


@dataclass(frozen=True, slots=True)
class Plan:
    """What to fetch to move from the applied state to ``manifest``."""

    manifest: Manifest
    up_to_date: bool
    fetch: tuple[PartRef, ...]  # parts whose bytes the device does not hold yet
    use_delta: bool


def plan_update(
    m: Manifest,
    current_version: int | None,
    current_digest: str | None,
    held: Mapping[str, str],
) -> Plan:
    """Decide how (and whether) to move to ``m``; raise on rollback or a foreign delta.

    ``held`` maps part name → sha256 of the parts the device holds now.
    """
    if current_version is not None:
        if m.version < current_version:
            raise BundleRollbackError(
                f"bundle version {m.version} is older than the applied version {current_version}"
            )
        if m.version == current_version:
            if m.digest == current_digest:  # the same signed payload, whatever the envelope
                return Plan(m, True, (), False)
            raise BundleRollbackError(
                f"bundle version {m.version} is already applied with different content"
            )
    # a delta needs its base: the status set of the current version, held on disk
    onto_current = m.delta_base is not None and m.delta_base == current_version
    use_delta = onto_current and "status" in held
    if m.status is not None and not use_delta and "status" not in m.parts:
        has = "no bundle" if current_version is None else str(current_version)
        raise BundleError(
            f"delta bundle applies onto version {m.delta_base} only; this device has "
            f"{has}{' but not its status set' if onto_current else ''} (fetch a full bundle)"
        )
    fetch = []
    for name, ref in m.parts.items():
        if name == "status" and use_delta:
            continue
        if name == "status_delta" and not use_delta:
            continue
        if held.get(name) == ref.sha256:
            continue
        if name == "status" and m.status is not None and held.get("status") == m.status.sha256:
            continue  # same status set, held decompressed
        fetch.append(ref)
    return Plan(m, False, tuple(fetch), use_delta)

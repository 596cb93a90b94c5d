"""The signed timestamp: the publisher's short-lived "this is still the current bundle".

Freshness must come from something the publisher signed, never from an unsigned HTTP
status (security review D2: a ``304 Not Modified`` from anyone on the path reset the
staleness clock, so revocations could be held back for weeks).  As in TUF's timestamp
role (TUF specification 1.0, §4.4 "timestamp.json" and §5.3 "Update the timestamp
role"), the publisher re-signs a tiny document every few hours::

    timestamp.json = {"signed": "<json>", "signatures": [...]}     (the manifest's envelope)
    <json> = {"format": "sentinel-timestamp/1", "version": 7,
              "manifest_sha256": "<SHA-256 of the manifest's signed payload>",
              "issued_at": "...Z", "expires_at": "...Z"}

The device fetches it on every sync, checks the signature against the pinned root keys,
that it has not expired and is not older than the newest one it has seen, and that it
names the manifest it holds (or is about to apply).  Data age is then measured from the
newest signed time (the timestamp's or the manifest's ``issued_at``), so neither a 304,
nor a replayed manifest, nor a replayed timestamp moves the staleness clock.  What remains
is documented in docs/security.md: a path attacker can withhold new timestamps, and the
device then goes stale ``trust.max_data_age_hours`` after the last one it saw.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sentinel.errors import BundleExpiredError, BundleFormatError, BundleSignatureError
from sentinel.trust import bundle as bm

FORMAT = "sentinel-timestamp/1"
NAME = "timestamp.json"
MAX_BYTES = 64 * 1024
DEFAULT_VALIDITY = timedelta(hours=24)
FUTURE_SKEW = timedelta(minutes=10)  # a timestamp issued further ahead is refused


@dataclass(frozen=True, slots=True)
class Timestamp:
    version: int
    manifest_sha256: str
    issued_at: datetime
    expires_at: datetime

    def names(self, m: bm.Manifest) -> bool:
        """Whether this timestamp vouches for manifest ``m`` (version and signed payload)."""
        return self.version == m.version and self.manifest_sha256 == m.digest


def sign_timestamp(
    manifest_raw: bytes,
    keys: Sequence[bm.PrivateKey],
    *,
    now: datetime | None = None,
    validity: timedelta = DEFAULT_VALIDITY,
) -> bytes:
    """Publisher side: the timestamp envelope for the manifest envelope ``manifest_raw``."""
    now = now or datetime.now(UTC)
    m = bm.parse_stored(manifest_raw)
    payload = {
        "format": FORMAT,
        "version": m.version,
        "manifest_sha256": m.digest,
        "issued_at": bm._ts(now),
        "expires_at": bm._ts(now + validity),
    }
    return bm.sign_manifest(payload, keys)


def write_timestamp(
    site: str | Path,
    keys: Sequence[bm.PrivateKey],
    *,
    now: datetime | None = None,
    validity: timedelta = DEFAULT_VALIDITY,
) -> Path:
    """Re-sign ``site/timestamp.json`` for the live ``site/manifest.json`` (atomically)."""
    import os

    site = Path(site)
    raw = sign_timestamp((site / "manifest.json").read_bytes(), keys, now=now, validity=validity)
    dest = site / NAME
    tmp = dest.with_name(f".{NAME}.{os.getpid()}.tmp")
    with tmp.open("wb") as f:
        f.write(raw)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, dest)
    return dest


def verify_timestamp(raw: bytes, keys: Sequence[bm.PublicKey], now: datetime) -> Timestamp:
    """Check signature, format and expiry; BundleError subclasses otherwise."""
    if len(raw) > MAX_BYTES:
        raise BundleFormatError(f"timestamp larger than {MAX_BYTES} bytes")
    env = bm.loads_bounded(raw, "timestamp envelope")
    signed = env.get("signed") if isinstance(env, dict) else None
    sigs = env.get("signatures") if isinstance(env, dict) else None
    if not isinstance(signed, str) or not isinstance(sigs, list):
        raise BundleFormatError("timestamp envelope unreadable")
    by_id = {bm.key_id(k): k for k in keys}
    if not any(_sig_ok(s, by_id, signed.encode()) for s in sigs):
        raise BundleSignatureError("timestamp is not signed by the pinned authority root key")
    doc = bm.loads_bounded(signed, "timestamp payload")
    try:
        if doc["format"] != FORMAT:
            raise ValueError(f"format {doc['format']!r}")
        version = doc["version"]
        digest = doc["manifest_sha256"]
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise ValueError("version must be a positive integer")
        if not (isinstance(digest, str) and len(digest) == 64):
            raise ValueError("manifest_sha256 must be 64 hex digits")
        bytes.fromhex(digest)
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleFormatError(f"timestamp unreadable: {exc}") from None
    ts = Timestamp(
        version,
        digest,
        bm._parse_ts(doc.get("issued_at"), "timestamp issued_at"),
        bm._parse_ts(doc.get("expires_at"), "timestamp expires_at"),
    )
    if ts.issued_at > now + FUTURE_SKEW:
        # outside its validity window, like an expired one (the caller ignores both)
        raise BundleExpiredError("timestamp issued in the future (check the clocks)")
    if now > ts.expires_at:
        raise BundleExpiredError(f"timestamp expired at {bm._ts(ts.expires_at)}")
    return ts


def _sig_ok(s: object, by_id: dict[str, bm.PublicKey], data: bytes) -> bool:
    if not isinstance(s, dict):
        return False
    key = by_id.get(str(s.get("keyid", "")))
    if key is None:
        return False
    try:
        sig = base64.b64decode(str(s.get("sig", "")), validate=True)
    except (binascii.Error, ValueError):
        return False
    return bm._verify(key, sig, data)

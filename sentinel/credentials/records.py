"""Sealed check-in records: the venue keeps them, only the health authority can read them.

For each admitted health-code presentation the device seals (subject id, time, venue,
gate) to the authority's X25519 record key with HPKE (RFC 9180 base mode,
DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM; ``cryptography``'s implementation)
and appends one JSON line to a file.  Each record has its own ephemeral key, so the
device, holding only the public key, cannot open what it wrote.  The hour of the
record is in clear (the journal has the times of admissions anyway) so that records
older than the retention window can be purged without opening them; it is bound into
the HPKE ``info`` so a moved record fails to open.

Line format (JSON Lines, ``docs/healthcode.md``)::

    {"v": 1, "hour": "2022-05-01T12", "kid": "<hex>", "sealed": "<base64 enc || ct>"}

Appends hold an exclusive ``flock`` on ``<file>.lock``, write one line and ``fsync``;
purges rewrite the file atomically (temp file, fsync, ``os.replace``, directory fsync)
under the same lock.  A torn last line (power cut mid-write) is skipped on read and
dropped by the next purge.  Opening records and the record key pair are the authority's
(``sentinel/authority/records.py``).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cbor2
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite

from sentinel.credentials.healthcode_keys import record_kid
from sentinel.errors import JournalError

RECORDS_FILE = "checkins.jsonl"
HANDOVER_FORMAT = "sentinel-checkin-handover"
SUITE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_128_GCM)
INFO = b"sentinel/checkin-record/v1|"
_MAX_LINE = 4096


@dataclass(frozen=True, slots=True)
class CheckinRecord:
    """What the authority learns: this subject was admitted here at this time."""

    subject: str
    time: datetime
    venue: str
    gate: str


def hour_of(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H")


def seal(record: CheckinRecord, key: x25519.X25519PublicKey) -> dict[str, Any]:
    """One sealed record line (as a dict) for the holder of ``key``'s private half."""
    hour = hour_of(record.time)
    plain = cbor2.dumps(
        {1: record.subject, 2: int(record.time.timestamp()), 3: record.venue, 4: record.gate}
    )
    sealed = SUITE.encrypt(plain, key, info=INFO + hour.encode())
    return {
        "v": 1,
        "hour": hour,
        "kid": record_kid(key),
        "sealed": base64.b64encode(sealed).decode(),
    }


# --- the file ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(str(path) + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def append_record(path: str | Path, line: dict[str, Any]) -> None:
    """Append one sealed line durably (fsync) under the file lock."""
    p = Path(path)
    data = json.dumps(line, separators=(",", ":")).encode() + b"\n"
    with _locked(p):
        created = not p.exists()
        try:
            fd = os.open(p, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            raise JournalError(f"{p}: cannot open check-in records: {exc.strerror}") from None
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data  # close a torn line so this record stands alone
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError as exc:
            raise JournalError(f"{p}: cannot append check-in record: {exc.strerror}") from None
        finally:
            os.close(fd)
        if created:
            _fsync_dir(p.parent)


def parse_line(raw: bytes) -> dict[str, Any] | None:
    if len(raw) > _MAX_LINE:
        return None
    try:
        d = json.loads(raw)
        datetime.strptime(d["hour"], "%Y-%m-%dT%H")
    except (ValueError, KeyError, TypeError):
        return None
    ok = d.get("v") == 1 and isinstance(d.get("sealed"), str) and isinstance(d.get("kid"), str)
    return d if ok else None


def _read(p: Path) -> tuple[list[dict[str, Any]], int]:
    """(good lines, number of unreadable lines)."""
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        return [], 0
    good, bad = [], 0
    for chunk in raw.split(b"\n"):
        if not chunk.strip():
            continue
        d = parse_line(chunk)
        if d is None:
            bad += 1
        else:
            good.append(d)
    return good, bad


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """The sealed lines in the file (a torn or foreign line is skipped)."""
    return _read(Path(path))[0]


def _expired(line: dict[str, Any], cutoff: datetime) -> bool:
    start = datetime.strptime(line["hour"], "%Y-%m-%dT%H").replace(tzinfo=UTC)
    # purge as soon as every second of the hour is older than the retention window
    return start + timedelta(hours=1) <= cutoff


def _write_atomic(p: Path, data: bytes) -> None:
    tmp = p.with_name(f".{p.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, p)
    _fsync_dir(p.parent)


def purge_records(path: str | Path, now: datetime, retention_days: int) -> int:
    """Remove records older than ``retention_days``; return how many lines were removed."""
    p = Path(path)
    cutoff = now - timedelta(days=retention_days)
    with _locked(p):
        lines, bad = _read(p)
        keep = [d for d in lines if not _expired(d, cutoff)]
        removed = len(lines) - len(keep) + bad
        if removed:
            body = b"".join(json.dumps(d, separators=(",", ":")).encode() + b"\n" for d in keep)
            _write_atomic(p, body)
    return removed


@dataclass(frozen=True, slots=True)
class ExportSummary:
    records: int
    sha256: str
    first_hour: str
    last_hour: str


def export_records(
    path: str | Path, out: str | Path, *, now: datetime, retention_days: int, venue: str
) -> ExportSummary:
    """Purge, then write a handover file: a header line and the sealed lines, atomically."""
    p, o = Path(path), Path(out)
    purge_records(p, now, retention_days)
    with _locked(p):
        lines, _ = _read(p)
    header = {
        "format": HANDOVER_FORMAT,
        "v": 1,
        "venue": venue,
        "exported_at": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "records": len(lines),
    }
    body = b"".join(json.dumps(d, separators=(",", ":")).encode() + b"\n" for d in [header, *lines])
    o.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(o, body)
    hours = sorted(d["hour"] for d in lines)
    return ExportSummary(
        len(lines),
        hashlib.sha256(body).hexdigest(),
        hours[0] if hours else "",
        hours[-1] if hours else "",
    )

"""The auditors' tamper-evident log: hash-chained entries signed with the device key.

Each entry holds the hash of the previous one and an Ed25519 signature over its own
hash, so editing, deleting, reordering or re-signing an entry breaks verification.

Entry hash: SHA-256 of the JSON array ``[seq, time, kind, details, prev_hash]`` (compact
separators; ``details`` is itself canonical JSON with sorted keys); the first entry's
``prev_hash`` is 64 zeros.  The signature is Ed25519 over the 32 hash bytes.

A hash chain cannot by itself show that entries were cut off its *end*, so every append
also writes ``audit.head`` (the newest sequence number and hash) beside the database:
verification fails when the chain no longer reaches the head.  Someone who can roll
back both files locally is caught only by an earlier export (``export``) or the fleet.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from sentinel.errors import AuditError, JournalError
from sentinel.journal.devicekey import _write_atomic, load_or_create_device_key
from sentinel.journal.space import (
    OPEN_FLOOR_BYTES,
    DiskFull,
    ensure_room,
    is_disk_full,
    rollback_quietly,
)
from sentinel.safefs import private_file

log = logging.getLogger(__name__)

GENESIS = "0" * 64
EXPORT_FORMAT = "sentinel-audit-export/1"
_FIELDS = ("seq", "time", "kind", "details", "prev_hash", "hash", "signature")
MAX_EXPORT_BYTES = 256 * 1024 * 1024


def public_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def fingerprint(key: Ed25519PublicKey) -> str:
    """The key's fingerprint as ``ssh-keygen -l`` prints it: ``SHA256:`` and the unpadded
    base64 of the SHA-256 of the key's SSH wire blob (RFC 4253 §6.6, RFC 8709), so an
    auditor can compare it with OpenSSH's own tools."""
    line = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    blob = base64.b64decode(line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def load_public_key(pem: str | bytes) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM (a public key, or a private key's public half)."""
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        if b"PRIVATE KEY" in data:
            priv = serialization.load_pem_private_key(data, password=None)
            key: object = priv.public_key()
        else:
            key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise AuditError(f"not a PEM key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise AuditError("the key is not an Ed25519 key")
    return key


def entry_hash(seq: int, time: str, kind: str, details: str, prev_hash: str) -> str:
    body = json.dumps([seq, time, kind, details, prev_hash], separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def _head_message(seq: int, h: str) -> bytes:
    return json.dumps(["sentinel-audit-head/1", seq, h], separators=(",", ":")).encode()


def sign_head(key: Ed25519PrivateKey, seq: int, h: str) -> dict[str, Any]:
    """A signed statement "the chain has ``seq`` entries ending in hash ``h``"."""
    return {"seq": seq, "hash": h, "signature": key.sign(_head_message(seq, h)).hex()}


@dataclass(frozen=True, slots=True)
class ChainReport:
    """A chain that verified: how many entries, its head and the signing key."""

    entries: int
    head_seq: int
    head_hash: str
    key_fingerprint: str


def verify_chain(
    entries: Sequence[Mapping[str, Any]],
    public_key: Ed25519PublicKey,
    head: Mapping[str, Any] | None = None,
) -> ChainReport:
    """Check every entry's hash, signature, link and sequence number, in order.

    Raises AuditError naming the first bad entry (``index`` = its position, 1-based).
    """
    prev = GENESIS
    for pos, e in enumerate(entries, 1):
        try:
            seq, t, kind, details = int(e["seq"]), str(e["time"]), str(e["kind"]), e["details"]
            prev_hash, h, sig = str(e["prev_hash"]), str(e["hash"]), str(e["signature"])
        except (KeyError, TypeError, ValueError):
            raise AuditError(f"entry {pos}: malformed (missing or bad fields)", pos) from None
        name = f"entry {pos} (seq {seq}, {kind}, {t})"
        if not isinstance(details, str) or entry_hash(seq, t, kind, details, prev_hash) != h:
            raise AuditError(f"{name}: content does not match its hash (edited)", pos)
        try:
            public_key.verify(bytes.fromhex(sig), bytes.fromhex(h))
        except (InvalidSignature, ValueError):
            raise AuditError(
                f"{name}: signature does not verify with the device key "
                "(forged or re-signed with another key)",
                pos,
            ) from None
        if prev_hash != prev:
            raise AuditError(
                f"{name}: does not link to the entry before it "
                "(an entry was deleted, inserted or reordered)",
                pos,
            )
        if seq != pos:
            raise AuditError(f"{name}: sequence number {seq} where {pos} belongs", pos)
        prev = h
    n = len(entries)
    if head is not None:
        try:
            hs, hh = int(head.get("seq", 0)), str(head.get("hash", ""))
            public_key.verify(bytes.fromhex(str(head.get("signature", ""))), _head_message(hs, hh))
        except (InvalidSignature, ValueError, TypeError):
            raise AuditError("head record: signature does not verify (forged head)", None) from None
        if hs > n:
            raise AuditError(
                f"entry {n + 1}: missing — the chain ends at {n} but its head names entry "
                f"{hs} (entries were cut off the end)",
                n + 1,
            )
        if hs > 0 and str(entries[hs - 1]["hash"]) != hh:
            raise AuditError(f"entry {hs}: does not match the recorded head hash", hs)
    return ChainReport(n, n, prev, fingerprint(public_key))


class AuditLog:
    """Append-only, hash-chained, signed entries in SQLite."""

    def __init__(self, db_path: str | Path, key_path: str | Path) -> None:
        self.db_path = Path(db_path)
        private_file(self.db_path)  # 0600 in a 0700 directory, whatever the umask
        self.head_path = self.db_path.with_suffix(".head")
        self.lock_path = self.db_path.with_suffix(".lock")
        # Below the floor SQLite's -shm mmap can SIGBUS (space.py): a clear error instead.
        ensure_room(self.db_path.parent, OPEN_FLOOR_BYTES, "audit log not opened")
        self.key = load_or_create_device_key(Path(key_path))
        self._lock = threading.RLock()
        self._closed = True
        # Under the append lock: two first opens would otherwise race to switch the new
        # file to WAL ("database is locked").
        with self._exclusive():
            try:
                self.conn = sqlite3.connect(
                    self.db_path, isolation_level=None, check_same_thread=False, timeout=30
                )
                self.conn.execute("PRAGMA journal_mode=WAL")
                self.conn.execute("PRAGMA synchronous=FULL")
                self.conn.execute(
                    "CREATE TABLE IF NOT EXISTS audit (seq INTEGER PRIMARY KEY, time TEXT, "
                    "kind TEXT, details TEXT, prev_hash TEXT, hash TEXT, signature TEXT)"
                )
            except sqlite3.Error as exc:
                raise JournalError(f"{self.db_path}: cannot open the audit log: {exc}") from None
        self._closed = False

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.key.public_key()

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        # One appender at a time across threads and processes (daemon, `sentinel purge`),
        # so the head file only ever moves forward.
        with self._lock:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)

    def append(
        self,
        kind: str,
        details: dict[str, Any],
        now: datetime | None = None,
        *,
        unless: tuple[str, str] | None = None,
    ) -> int:
        """Append an entry (no personal data in ``details``); return its sequence number.

        ``unless=(field, value)``: append only when no ``kind`` entry has that detail
        yet (checked under the append lock, so two processes repairing the same gap
        write it once); returns 0 when one existed.
        """
        t = (now or datetime.now(UTC)).astimezone(UTC).isoformat()
        body = json.dumps(details, sort_keys=True, separators=(",", ":"))
        with self._exclusive():
            if self._closed:
                raise JournalError(f"{self.db_path}: audit log is closed")
            if unless is not None and self.has_entry(kind, *unless):
                return 0
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                last = self.conn.execute(
                    "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1"
                ).fetchone()
                seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
                h = entry_hash(seq, t, kind, body, prev)
                sig = self.key.sign(bytes.fromhex(h)).hex()
                self.conn.execute(
                    "INSERT INTO audit VALUES (?,?,?,?,?,?,?)", (seq, t, kind, body, prev, h, sig)
                )
                self.conn.execute("COMMIT")
            except sqlite3.Error as exc:
                rollback_quietly(self.conn)
                cls = DiskFull if is_disk_full(exc) else JournalError
                raise cls(f"{self.db_path}: audit entry not appended: {exc}") from None
            except BaseException:
                rollback_quietly(self.conn)
                raise
            # After the commit: a crash (or a full disk) here leaves the head behind,
            # which verifies (the chain may run past its head, never stop short of it).
            try:
                _write_atomic(self.head_path, json.dumps(sign_head(self.key, seq, h)).encode())
            except OSError as exc:
                log.warning(
                    "%s: head record not updated (entry %d is in): %s", self.head_path, seq, exc
                )
        return seq

    def has_entry(self, kind: str, field: str, value: str) -> bool:
        """True when an entry of ``kind`` whose details have ``field`` = ``value`` exists."""
        with self._lock:
            row = self.conn.execute(
                "SELECT 1 FROM audit WHERE kind = ? AND json_extract(details, ?) = ? LIMIT 1",
                (kind, f"$.{field}", value),
            ).fetchone()
        return row is not None

    def entries(self) -> list[dict[str, Any]]:
        with self._lock:
            cur = self.conn.execute(f"SELECT {', '.join(_FIELDS)} FROM audit ORDER BY seq")
            return [dict(zip(_FIELDS, r, strict=True)) for r in cur.fetchall()]

    def has_purge(self, purge_id: str) -> bool:
        """True when a "purge" entry for ``purge_id`` is already in the chain."""
        with self._lock:
            row = self.conn.execute(
                "SELECT 1 FROM audit WHERE kind = 'purge' "
                "AND json_extract(details, '$.purge_id') = ? LIMIT 1",
                (purge_id,),
            ).fetchone()
        return row is not None

    def head(self) -> dict[str, Any] | None:
        """The recorded head (newest seq and hash), or None before the first append."""
        try:
            data = json.loads(self.head_path.read_bytes())
        except FileNotFoundError:
            return None
        except ValueError:
            raise AuditError(f"{self.head_path}: unreadable head record", None) from None
        if not isinstance(data, dict):
            raise AuditError(f"{self.head_path}: unreadable head record", None)
        return data

    def verify(self) -> ChainReport:
        """Verify the whole chain with this device's key; raise AuditError if broken."""
        return verify_chain(self.entries(), self.public_key, self.head())

    def export(self, out: str | Path, now: datetime | None = None) -> int:
        """Write the chain, its head and the device public key to ``out``; return entries."""
        entries = self.entries()
        doc = {
            "format": EXPORT_FORMAT,
            "exported_at": (now or datetime.now(UTC)).astimezone(UTC).isoformat(),
            "device_public_key": public_pem(self.public_key),
            "key_fingerprint": fingerprint(self.public_key),
            "head": sign_head(self.key, entries[-1]["seq"], entries[-1]["hash"])
            if entries
            else None,
            "entries": entries,
        }
        _write_atomic(Path(out), json.dumps(doc, indent=1).encode() + b"\n")
        return len(entries)

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self.conn.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True, slots=True)
class ExportFile:
    entries: list[dict[str, Any]]
    public_key: Ed25519PublicKey
    head: dict[str, Any] | None
    exported_at: str


def load_export(path: str | Path) -> ExportFile:
    """Parse an export written by ``AuditLog.export``; AuditError when malformed."""
    p = Path(path)
    try:
        if p.stat().st_size > MAX_EXPORT_BYTES:
            raise AuditError(f"{p}: larger than {MAX_EXPORT_BYTES} bytes", None)
        doc = json.loads(p.read_bytes())
    except FileNotFoundError:
        raise AuditError(f"{p}: no such file", None) from None
    except (ValueError, UnicodeDecodeError):
        raise AuditError(f"{p}: not a JSON audit export", None) from None
    if not isinstance(doc, dict) or doc.get("format") != EXPORT_FORMAT:
        raise AuditError(f"{p}: not a {EXPORT_FORMAT} file", None)
    entries = doc.get("entries")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise AuditError(f"{p}: 'entries' must be a list of objects", None)
    head = doc.get("head")
    return ExportFile(
        entries,
        load_public_key(str(doc.get("device_public_key", ""))),
        head if isinstance(head, dict) else None,
        str(doc.get("exported_at", "")),
    )


def open_audit(data_dir: str | Path) -> AuditLog:
    """The device's audit log under ``data_dir`` (audit.db, device_key.pem)."""
    d = Path(data_dir)
    return AuditLog(d / "audit.db", d / "device_key.pem")

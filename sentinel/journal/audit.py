"""The auditors' tamper-evident log: hash-chained entries signed with the device key.

Each entry holds the hash of the previous one and an Ed25519 signature over its own
hash, so editing, deleting, reordering or re-signing an entry breaks verification.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

GENESIS = "0" * 64


def load_or_create_device_key(path: Path) -> Ed25519PrivateKey:
    """The device's Ed25519 key (PEM, mode 0600), created on first use."""
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path}: not an Ed25519 private key")
        return key
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return key


def entry_hash(seq: int, time: str, kind: str, details: str, prev_hash: str) -> str:
    body = json.dumps([seq, time, kind, details, prev_hash], separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


class AuditLog:
    """Append-only, hash-chained, signed entries in SQLite."""

    def __init__(self, db_path: str | Path, key_path: str | Path) -> None:
        self.db_path = Path(db_path)
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self.key = load_or_create_device_key(Path(key_path))
        self.db = sqlite_utils.Database(self.db_path)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        if "audit" not in self.db.table_names():
            self.db["audit"].create(
                {
                    "seq": int,
                    "time": str,
                    "kind": str,
                    "details": str,
                    "prev_hash": str,
                    "hash": str,
                    "signature": str,
                },
                pk="seq",
            )

    def append(self, kind: str, details: dict[str, Any], now: datetime | None = None) -> int:
        """Append an entry (no personal data in ``details``); return its sequence number."""
        t = (now or datetime.now(UTC)).astimezone(UTC).isoformat()
        body = json.dumps(details, sort_keys=True, separators=(",", ":"))
        with self.db.conn:
            last = self.db.execute(
                "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
            h = entry_hash(seq, t, kind, body, prev)
            sig = self.key.sign(bytes.fromhex(h)).hex()
            self.db["audit"].insert(
                {
                    "seq": seq,
                    "time": t,
                    "kind": kind,
                    "details": body,
                    "prev_hash": prev,
                    "hash": h,
                    "signature": sig,
                }
            )
        return seq

    def entries(self) -> list[dict[str, Any]]:
        return list(self.db["audit"].rows_where(order_by="seq"))

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_audit(data_dir: str | Path) -> AuditLog:
    """The device's audit log under ``data_dir`` (audit.db, device_key.pem)."""
    d = Path(data_dir)
    return AuditLog(d / "audit.db", d / "device_key.pem")

"""The device's outbox: minimized events waiting for the broker, in the journal's database.

Rows enter the outbox in the same SQLite transaction as their journal row
(``Outbox.hook`` is registered on the Journal), so an event is either journaled *and*
queued for export, or neither.  The sender deletes a row only after the broker
acknowledged it (MQTT QoS 1 PUBACK).  The outbox is bounded: when it holds
``max_rows``, new exports are not queued (the journal row is still written and the gate
keeps working), ``dropped`` counts them and ``full`` raises the alarm.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The only fields that ever leave the device.  Never a personal field.
EXPORT_FIELDS = (
    "event_id",
    "device_id",
    "venue",
    "gate",
    "time",
    "decision",
    "reason",
    "credential_kind",
    "bundle_version",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox_state (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""


def export_payload(row: Mapping[str, Any], device_id: str) -> bytes:
    """The minimized JSON an event is exported as (only ``EXPORT_FIELDS``)."""
    out = {k: row.get(k, "") for k in EXPORT_FIELDS}
    out["device_id"] = device_id
    return json.dumps(out, separators=(",", ":"), sort_keys=True).encode()


@dataclass(frozen=True, slots=True)
class Pending:
    seq: int
    event_id: str
    payload: bytes


class Outbox:
    """Queue of exports in the SQLite database at ``path`` (the journal's file)."""

    def __init__(self, path: str | Path, device_id: str, *, max_rows: int = 100_000) -> None:
        self.path = Path(path)
        self.device_id = device_id
        self.max_rows = max_rows
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._conn.executescript(_SCHEMA)
        self.wakeup = threading.Event()

    # --- producer side: called inside the journal's transaction ---------------------------
    def hook(self, conn: sqlite3.Connection, row: Mapping[str, Any]) -> None:
        """Queue ``row`` for export using the caller's connection and transaction."""
        (n,) = conn.execute("SELECT count(*) FROM outbox").fetchone()
        if n >= self.max_rows:
            conn.execute(
                "INSERT INTO outbox_state(key, value) VALUES('dropped', 1) "
                "ON CONFLICT(key) DO UPDATE SET value = value + 1"
            )
            return
        conn.execute(
            "INSERT OR IGNORE INTO outbox(event_id, payload) VALUES (?, ?)",
            (str(row["event_id"]), export_payload(row, self.device_id)),
        )
        self.wakeup.set()

    # --- consumer side ---------------------------------------------------------------------
    def pending(self, limit: int = 100) -> list[Pending]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, event_id, payload FROM outbox ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
        return [Pending(int(s), str(e), bytes(p)) for s, e, p in rows]

    def ack(self, seqs: list[int]) -> None:
        """Forget rows the broker acknowledged."""
        if not seqs:
            return
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s in seqs])
            self._conn.execute("COMMIT")

    def count(self) -> int:
        with self._lock:
            (n,) = self._conn.execute("SELECT count(*) FROM outbox").fetchone()
        return int(n)

    @property
    def dropped(self) -> int:
        with self._lock:
            row = self._conn.execute(
                "SELECT value FROM outbox_state WHERE key = 'dropped'"
            ).fetchone()
        return int(row[0]) if row else 0

    @property
    def full(self) -> bool:
        return self.count() >= self.max_rows

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

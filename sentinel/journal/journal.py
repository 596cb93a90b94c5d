"""The journal: one minimal row per presentation, in SQLite.

Tables (``journal.db``):

- ``events``: time, venue, gate, decision, reason, credential kind, bundle version.
  No personal data.  Kept for ``retention_days``.
- ``personal``: the personal display fields of an event (masked name, masked document
  number, keyed pseudonym) as one AES-256-GCM ciphertext under the key of the event's
  calendar day (UTC), bound to the event id and day as associated data.  The day keys
  live in a separate key store file (``keystore.py``); the purge destroys them.
- ``daily_counts``: non-personal counts per day, venue, gate, decision, reason and
  credential kind, updated in the same transaction as each event; kept for
  ``aggregate_days`` so reports can look further back than the personal window.
- ``purge_log``: one row per purged day (``purge.py``), so an interrupted purge finishes
  its audit entries on the next run.
- ``audit_pending``: audit entries owed by events written with ``record_audited``
  (overrides), committed with the event and removed once in the chain (``pending.py``).

WAL mode with ``synchronous=FULL`` by default: a ``record()`` that returned survives a
power cut.  ``secure_delete=ON`` on every connection zeroes deleted rows in place.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sentinel.errors import JournalError
from sentinel.journal import space
from sentinel.journal.keystore import KeyStore, connect
from sentinel.journal.model import (
    EVENT_COLUMNS,
    Event,
    Personal,
    _aad,
    _as_personal,
    day_start_iso,
    first_kept_day,
    utc_iso,
)
from sentinel.safefs import private_file

NONCE_BYTES = 12  # NIST SP 800-38D: 96-bit nonces, random per message
_PAD = 64  # plaintexts are padded to a multiple of this, so lengths do not leak names
__all__ = [
    "EVENT_COLUMNS",
    "Event",
    "Journal",
    "Personal",
    "day_start_iso",
    "first_kept_day",
    "utc_iso",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    event_id TEXT PRIMARY KEY, time TEXT, venue TEXT, gate TEXT, decision TEXT,
    reason TEXT, credential_kind TEXT, bundle_version TEXT);
CREATE INDEX IF NOT EXISTS idx_events_time ON events (time);
CREATE TABLE IF NOT EXISTS personal (
    event_id TEXT PRIMARY KEY, day TEXT NOT NULL, nonce BLOB NOT NULL, ct BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS idx_personal_day ON personal (day);
CREATE TABLE IF NOT EXISTS daily_counts (
    day TEXT NOT NULL, venue TEXT NOT NULL, gate TEXT NOT NULL, decision TEXT NOT NULL,
    reason TEXT NOT NULL, credential_kind TEXT NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY (day, venue, gate, decision, reason, credential_kind));
CREATE TABLE IF NOT EXISTS audit_pending (
    pending_id TEXT PRIMARY KEY, kind TEXT NOT NULL, details TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS purge_log (
    purge_id TEXT PRIMARY KEY, scope TEXT NOT NULL, day TEXT NOT NULL, started TEXT,
    key_destroyed INTEGER NOT NULL DEFAULT 0, personal_rows INTEGER NOT NULL DEFAULT 0,
    event_rows INTEGER NOT NULL DEFAULT 0, count_rows INTEGER NOT NULL DEFAULT 0,
    audited INTEGER NOT NULL DEFAULT 0);
"""


class Journal:
    """Append-only event store with encrypted personal fields and daily aggregates.

    ``Journal(path)`` keeps its day keys in ``<stem>-keys.db`` beside ``path`` unless
    ``key_path`` says otherwise.  ``clock`` decides what "inside the retention window"
    means for ``record`` (personal fields of days already outside are dropped) and for
    ``personal`` (returns None outside).  Safe to share between threads.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        key_path: str | Path | None = None,
        retention_days: int = 14,
        synchronous: str = "FULL",
        clock: Any = None,
    ) -> None:
        if synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise JournalError(f"synchronous must be FULL, NORMAL or EXTRA, not {synchronous!r}")
        self.path = Path(path)
        private_file(self.path)  # 0600 in a 0700 directory, whatever the umask
        self.key_path = (
            Path(key_path) if key_path else self.path.with_name(self.path.stem + "-keys.db")
        )
        self.retention_days = retention_days
        self.clock = clock or (lambda: datetime.now(UTC))
        self.lock = threading.RLock()
        # Free-space guard (space.py): new events need write_reserve_bytes free; nothing
        # is opened below open_floor_bytes (SQLite's -shm mmap can SIGBUS there).
        self.write_reserve_bytes = space.WRITE_RESERVE_BYTES
        self.open_floor_bytes = space.OPEN_FLOOR_BYTES
        space.ensure_room(self.path.parent, self.open_floor_bytes, "journal not opened")
        self.conn: sqlite3.Connection = connect(self.path, synchronous=synchronous)
        try:
            self.conn.executescript(_SCHEMA)
            self.keys = KeyStore(self.key_path)
        except sqlite3.Error as exc:
            self.conn.close()
            raise JournalError(f"{self.path}: cannot open the journal: {exc}") from None
        self._key_cache: tuple[date, bytes] | None = None
        self._closed = False
        # Called inside the transaction of each new event row (e.g. the fleet outbox), so
        # an event is journaled and queued for export together, or not at all.
        self.hooks: list[Callable[[sqlite3.Connection, dict[str, str]], None]] = []

    @property
    def db(self) -> Any:
        """A sqlite-utils view of the journal database (imported on use: it is slow)."""
        import sqlite_utils

        return sqlite_utils.Database(self.conn)

    # -- writing ---------------------------------------------------------------------

    def in_window(self, day: date, now: datetime | None = None) -> bool:
        """True when personal fields of ``day`` may be kept and shown at ``now``."""
        return day >= first_kept_day(now or self.clock(), self.retention_days)

    def _day_key(self, day: date) -> bytes:
        cached = self._key_cache
        if cached is not None and cached[0] == day:
            return cached[1]
        key = self.keys.key_for(day, create=True)
        assert key is not None
        self._key_cache = (day, key)
        return key

    def _prepare(
        self, event: Event, personal: Personal | Mapping[str, str] | None
    ) -> tuple[tuple[str, ...], tuple[str, str, bytes, bytes] | None]:
        # Plain attribute reads: dataclasses.asdict deep-copies and costs more than AES.
        values = (
            event.event_id or uuid.uuid4().hex,
            utc_iso(event.time),
            str(event.venue),
            str(event.gate),
            str(event.decision),
            str(event.reason),
            str(event.credential_kind),
            str(event.bundle_version),
        )
        p = _as_personal(personal)
        day = event.time.astimezone(UTC).date()
        if p is None or p.is_empty() or not self.in_window(day):
            return values, None
        # The key is committed to the key store before the ciphertext is written, so
        # an acknowledged row always has its key (until the purge).
        key = self._day_key(day)
        fields = {
            "display_name": p.display_name,
            "document_masked": p.document_masked,
            "pseudonym": p.pseudonym,
        }
        plain = json.dumps(fields, separators=(",", ":")).encode()
        plain += b" " * (-len(plain) % _PAD)
        nonce = os.urandom(NONCE_BYTES)
        ct = AESGCM(key).encrypt(nonce, plain, _aad(values[0], day.isoformat()))
        return values, (values[0], day.isoformat(), nonce, ct)

    def _insert(self, values: tuple[str, ...], enc: tuple[str, str, bytes, bytes] | None) -> None:
        self.conn.execute(
            f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES (?,?,?,?,?,?,?,?)",
            values,
        )
        if enc is not None:
            self.conn.execute(
                "INSERT INTO personal (event_id, day, nonce, ct) VALUES (?,?,?,?)", enc
            )
        _eid, t, venue, gate, decision, reason, kind, _bv = values
        self.conn.execute(
            "INSERT INTO daily_counts VALUES (?,?,?,?,?,?,1) ON CONFLICT DO UPDATE "
            "SET count = count + 1",
            (t[:10], venue, gate, decision, reason, kind),
        )
        if self.hooks:
            row = dict(zip(EVENT_COLUMNS, values, strict=True))
            for hook in self.hooks:
                hook(self.conn, row)

    def record(self, event: Event, *, personal: Personal | Mapping[str, str] | None = None) -> str:
        """Store ``event`` (and its personal fields, encrypted); return the event id.

        The row is durable when this returns.  Personal fields of a day already outside
        the retention window are not stored at all.
        """
        return self.record_many([(event, personal)])[0]

    def record_many(
        self, items: Iterable[tuple[Event, Personal | Mapping[str, str] | None]]
    ) -> list[str]:
        """Store several events in one transaction (imports, benchmarks)."""
        return self._record(list(items), ())

    def _record(
        self,
        items: list[tuple[Event, Personal | Mapping[str, str] | None]],
        audit: Iterable[tuple[str, str, dict[str, Any]]],
    ) -> list[str]:
        with self.lock:
            if self._closed:
                raise JournalError(f"{self.path}: journal is closed")
            # Refuse before SQLite touches a disk that is (nearly) full: the gate goes on,
            # the pipeline turns this into a DISK_FULL device event.
            space.ensure_room(self.path.parent, self.write_reserve_bytes, "event not recorded")
            try:
                prepared = [self._prepare(e, p) for e, p in items]
            except sqlite3.Error as exc:  # the day key is created (and committed) here
                raise self._error("event not recorded: day key not created", exc) from None
            try:
                self._begin()
            except sqlite3.Error as exc:
                raise self._error("event not recorded", exc) from None
            try:
                for values, enc in prepared:
                    self._insert(values, enc)
                for pending_id, kind, details in audit:
                    self.conn.execute(
                        "INSERT INTO audit_pending (pending_id, kind, details) VALUES (?,?,?)",
                        (pending_id, kind, json.dumps(details, sort_keys=True)),
                    )
                self.conn.execute("COMMIT")
            except sqlite3.Error as exc:
                space.rollback_quietly(self.conn)
                raise self._error("event not recorded", exc) from None
            except BaseException:
                space.rollback_quietly(self.conn)
                raise
        return [values[0] for values, _ in prepared]

    def record_audited(
        self,
        event: Event,
        kind: str,
        details: dict[str, Any],
        *,
        personal: Personal | Mapping[str, str] | None = None,
    ) -> str:
        """Store ``event`` and, in the same transaction, the audit entry it owes.

        The entry waits in ``audit_pending`` until ``audit_pending.deliver`` has appended
        it to the chain (at once, or at the next start after a crash), so an event such
        as an override can never be journaled without its audit entry following.
        ``details`` gets the event id as ``event_id``.
        """
        event_id = event.event_id or uuid.uuid4().hex
        event = Event(
            event.time,
            event.venue,
            event.gate,
            event.decision,
            event.reason,
            event.credential_kind,
            event.bundle_version,
            event_id,
        )
        full = {**details, "event_id": event_id}
        return self._record([(event, personal)], [(f"event:{event_id}", kind, full)])[0]

    def _error(self, what: str, exc: sqlite3.Error) -> JournalError:
        cls = space.DiskFull if space.is_disk_full(exc) else JournalError
        return cls(f"{self.path}: {what}: {exc}")

    def _begin(self) -> None:
        if self._closed:
            raise JournalError(f"{self.path}: journal is closed")
        self.conn.execute("BEGIN IMMEDIATE")

    # -- reading ---------------------------------------------------------------------

    def events(self) -> list[dict[str, object]]:
        """Every event row, oldest first (non-personal columns only)."""
        cols = ", ".join(EVENT_COLUMNS)
        with self.lock:
            rows = self.conn.execute(f"SELECT {cols} FROM events ORDER BY time").fetchall()
        return [dict(zip(EVENT_COLUMNS, r, strict=True)) for r in rows]

    def query(
        self,
        start: datetime,
        end: datetime,
        gate: str | None = None,
        reason: str | None = None,
        decision: str | None = None,
    ) -> list[dict[str, object]]:
        """Events with ``start <= time < end``, oldest first, optionally filtered.

        Each row has the ``events`` columns plus ``has_personal`` (1 when encrypted
        personal fields are still stored; ``personal(event_id)`` decides if they may be
        shown).
        """
        where = ["e.time >= ?", "e.time < ?"]
        params: list[str] = [utc_iso(start), utc_iso(end)]
        for col, val in (("gate", gate), ("reason", reason), ("decision", decision)):
            if val is not None:
                where.append(f"e.{col} = ?")
                params.append(val)
        cols = ", ".join(f"e.{c}" for c in EVENT_COLUMNS)
        sql = (
            f"SELECT {cols}, EXISTS (SELECT 1 FROM personal p WHERE p.event_id = e.event_id)"
            f" AS has_personal FROM events e WHERE {' AND '.join(where)} ORDER BY e.time"
        )
        with self.lock:
            cur = self.conn.execute(sql, params)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def personal(self, event_id: str, now: datetime | None = None) -> dict[str, str] | None:
        """The decrypted personal fields of an event, or None when there are none, the
        event's day is outside the retention window, or its key was destroyed.

        Raises JournalError when a stored ciphertext fails authentication (tampering).
        """
        with self.lock:
            row = self.conn.execute(
                "SELECT day, nonce, ct FROM personal WHERE event_id = ?", (event_id,)
            ).fetchone()
        if row is None:
            return None
        day = date.fromisoformat(row[0])
        if not self.in_window(day, now):
            return None
        key = self.keys.key_for(day)
        if key is None:
            return None
        try:
            plain = AESGCM(key).decrypt(bytes(row[1]), bytes(row[2]), _aad(event_id, row[0]))
        except InvalidTag:
            raise JournalError(f"personal fields of event {event_id} fail authentication") from None
        return {k: str(v) for k, v in json.loads(plain).items()}

    def repeat_refusals(
        self, start: datetime, end: datetime, *, min_count: int = 2
    ) -> list[tuple[str, int]]:
        """Pseudonyms refused at least ``min_count`` times in [start, end), most first.

        Only events whose personal fields are still readable count.
        """
        counts: Counter[str] = Counter()
        for row in self.query(start, end, decision="refuse"):
            if not row["has_personal"]:
                continue
            p = self.personal(str(row["event_id"]))
            if p and p.get("pseudonym"):
                counts[p["pseudonym"]] += 1
        return [(k, n) for k, n in counts.most_common() if n >= min_count]

    def daily_counts(
        self, start_day: date, end_day: date, gate: str | None = None
    ) -> list[dict[str, object]]:
        """Non-personal counts for days in [start_day, end_day] (kept aggregate_days)."""
        sql = "SELECT * FROM daily_counts WHERE day >= ? AND day <= ?"
        params = [start_day.isoformat(), end_day.isoformat()]
        if gate is not None:
            sql += " AND gate = ?"
            params.append(gate)
        with self.lock:
            cur = self.conn.execute(sql + " ORDER BY day, gate, decision, reason", params)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def pseudonym_key(self) -> bytes:
        """The device-held HMAC key for holder pseudonyms (from the key store)."""
        return self.keys.pseudonym_key()

    # -- lifecycle -------------------------------------------------------------------

    def close(self) -> None:
        with self.lock:
            if self._closed:
                return
            self._closed = True
            self._key_cache = None
            self.conn.close()
            self.keys.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""The key store: one AES-256-GCM key per calendar day (UTC), in its own SQLite file.

Personal journal fields are encrypted under the key of their day.  Destroying a day's
key (crypto-shredding) makes every copy of that day's ciphertext unreadable — in the
journal file, its WAL, free pages, and any backup of the journal — which is why the key
store is a *separate* file: back up ``journal.db`` if you must, never the key store.

The file is created with mode 0600 (SQLite gives its ``-wal``/``-shm`` the same mode).
Every connection runs with ``PRAGMA secure_delete=ON`` so a destroyed key's page is
zeroed, and a destruction ends with ``wal_checkpoint(TRUNCATE)`` so no WAL frame keeps
an old copy of the page.

The store also holds the device's pseudonym key (HMAC key for ``holder_pseudonym``):
it never leaves the device, so pseudonyms cannot be recomputed elsewhere.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import threading
from collections.abc import Iterable
from datetime import UTC, date, datetime
from pathlib import Path

from sentinel.errors import JournalError
from sentinel.journal.space import rollback_quietly

KEY_BYTES = 32  # AES-256-GCM

_SCHEMA = """
CREATE TABLE IF NOT EXISTS day_keys (day TEXT PRIMARY KEY, key BLOB NOT NULL, created TEXT);
CREATE TABLE IF NOT EXISTS secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL);
"""


def _precreate(path: Path) -> None:
    """Create ``path`` empty with mode 0600 unless it exists (before SQLite opens it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def connect(path: Path, *, synchronous: str = "FULL") -> sqlite3.Connection:
    """An autocommit connection: WAL, secure_delete, a busy timeout (shared by the journal)."""
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        # Before WAL mode creates the file: a new database can hand pages back to the
        # file system in small steps (purge on a nearly full disk); no effect on old ones.
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute("PRAGMA secure_delete=ON")
    except sqlite3.Error as exc:
        raise JournalError(f"{path}: cannot open database: {exc}") from None
    return conn


def checkpoint_truncate(conn: sqlite3.Connection, attempts: int = 5) -> bool:
    """Copy the WAL into the database and truncate the WAL to zero bytes; True when done.

    A reader holding an old snapshot makes the checkpoint incomplete (busy); the busy
    timeout already waits, so a few attempts are plenty.
    """
    for _ in range(attempts):
        busy, _log, _done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy == 0:
            return True
    return False


class KeyStore:
    """Day keys and the pseudonym key in a 0600 SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        _precreate(self.path)
        if self.path.stat().st_mode & 0o077:
            os.chmod(self.path, 0o600)
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = connect(self.path)
        self._conn.executescript(_SCHEMA)

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise JournalError(f"{self.path}: key store is closed")
        return self._conn

    def key_for(self, day: date, *, create: bool = False) -> bytes | None:
        """The key of ``day``; with ``create``, made (and committed) if it does not exist."""
        d = day.isoformat()
        with self._lock:
            row = self.conn.execute("SELECT key FROM day_keys WHERE day=?", (d,)).fetchone()
            if row is not None or not create:
                return bytes(row[0]) if row else None
            # INSERT OR IGNORE: two processes racing for the same day end with one key.
            self.conn.execute(
                "INSERT OR IGNORE INTO day_keys (day, key, created) VALUES (?, ?, ?)",
                (d, secrets.token_bytes(KEY_BYTES), datetime.now(UTC).isoformat()),
            )
            row = self.conn.execute("SELECT key FROM day_keys WHERE day=?", (d,)).fetchone()
            return bytes(row[0])

    def days(self) -> list[date]:
        """Days that still have a key, oldest first."""
        with self._lock:
            rows = self.conn.execute("SELECT day FROM day_keys ORDER BY day").fetchall()
        return [date.fromisoformat(r[0]) for r in rows]

    def destroy(self, days: Iterable[date]) -> list[date]:
        """Destroy the keys of ``days`` (crypto-shredding); return the days that had one.

        One transaction, pages zeroed (secure_delete), then the WAL is truncated.
        """
        wanted = sorted({d.isoformat() for d in days})
        with self._lock:
            conn = self.conn
            try:
                conn.execute("BEGIN IMMEDIATE")  # another process may hold the lock too long
                had = [
                    d
                    for d in wanted
                    if conn.execute("SELECT 1 FROM day_keys WHERE day=?", (d,)).fetchone()
                ]
                conn.executemany("DELETE FROM day_keys WHERE day=?", [(d,) for d in had])
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                rollback_quietly(conn)
                raise JournalError(f"{self.path}: day keys not destroyed: {exc}") from None
            except BaseException:
                rollback_quietly(conn)
                raise
            self.shrink()
        return [date.fromisoformat(d) for d in had]

    def shrink(self) -> bool:
        """Truncate the WAL (and vacuum if pages are free); True when the WAL is empty.

        The key store is a few pages; on a disk too full even for that the free pages
        stay (zeroed by secure_delete) and the WAL is still emptied.
        """
        with self._lock:
            try:
                if self.conn.execute("PRAGMA freelist_count").fetchone()[0]:
                    self.conn.execute("VACUUM")
            except sqlite3.Error:
                rollback_quietly(self.conn)
            try:
                return checkpoint_truncate(self.conn)
            except sqlite3.Error as exc:
                raise JournalError(f"{self.path}: WAL not truncated: {exc}") from None

    def pseudonym_key(self) -> bytes:
        """The device's HMAC key for holder pseudonyms, created on first use."""
        with self._lock:
            self.conn.execute(
                "INSERT OR IGNORE INTO secrets (name, value) VALUES ('pseudonym', ?)",
                (secrets.token_bytes(KEY_BYTES),),
            )
            row = self.conn.execute("SELECT value FROM secrets WHERE name='pseudonym'").fetchone()
        return bytes(row[0])

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> KeyStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""The key store on its own: where it is made, what it leaves open, what a destruction
leaves on disk.  Real SQLite files in tmp_path; each test reads the file system or the
database the key store wrote."""

from __future__ import annotations

import os
import sqlite3
import threading
from datetime import date, timedelta
from pathlib import Path

import pytest

from sentinel.journal.keystore import KeyStore

D0 = date(2022, 5, 1)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_key_store_in_a_missing_folder_is_made_with_its_parents(tmp_path: Path) -> None:
    path = tmp_path / "new" / "nested" / "keys.db"
    with KeyStore(path) as ks:
        assert ks.key_for(D0, create=True)
    assert path.is_file()
    with KeyStore(path) as ks:  # and opens again where it is
        assert ks.days() == [D0]


def test_opening_and_closing_leaves_no_descriptor_open(tmp_path: Path) -> None:
    """A daemon opens the key store for each purge: nothing may pile up."""
    before = _open_fds()
    for i in range(5):
        with KeyStore(tmp_path / f"k{i}.db") as ks:  # new files: the 0600 pre-create path
            ks.key_for(D0, create=True)
    ks = KeyStore(tmp_path / "k0.db")  # and an existing one, closed by close()
    ks.close()
    ks.close()  # twice is harmless
    assert _open_fds() == before


def test_a_destruction_leaves_no_free_page_and_an_empty_wal(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    days = [D0 + timedelta(days=k) for k in range(300)]
    with KeyStore(path) as ks:
        keys = [ks.key_for(d, create=True) for d in days]
        assert ks.destroy(days[:299]) == days[:299]
        assert ks.days() == days[299:]
        assert ks.conn.execute("PRAGMA freelist_count").fetchone()[0] == 0  # vacuumed
        assert (tmp_path / "keys.db-wal").stat().st_size == 0  # truncated
        assert ks.shrink() is True  # nothing left to do, and it says the WAL is empty
        raw = path.read_bytes()
    assert keys[299] in raw
    assert not any(k in raw for k in keys[:299] if k)
    with sqlite3.connect(path) as conn:  # durable for another reader
        assert conn.execute("SELECT count(*) FROM day_keys").fetchone()[0] == 1


def test_connections_run_at_the_synchronous_level_asked_for(tmp_path: Path) -> None:
    """FULL by default (the key store), NORMAL when the journal is configured so."""
    from sentinel.journal.keystore import connect

    with KeyStore(tmp_path / "keys.db") as ks:
        assert ks.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # 2 = FULL
    conn = connect(tmp_path / "journal.db", synchronous="NORMAL")
    try:
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # 1 = NORMAL
    finally:
        conn.close()


def test_connections_wait_30_seconds_for_another_writer(tmp_path: Path) -> None:
    """The journal and the key store share files with another process (``sentinel purge``
    run by hand beside the service): a writer there makes them wait up to 30 s for the
    lock (SQLite's busy timeout), not sqlite3's default 5 s."""
    from sentinel.journal.keystore import connect

    with KeyStore(tmp_path / "keys.db") as ks:
        assert ks.conn.execute("PRAGMA busy_timeout").fetchone()[0] == 30_000
    conn = connect(tmp_path / "journal.db", synchronous="NORMAL")
    try:
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 30_000
    finally:
        conn.close()


def test_keys_are_made_and_read_from_other_threads(tmp_path: Path) -> None:
    """The web UI and the scan loop share one key store from their own threads."""
    got: dict[int, bytes | None] = {}
    errors: list[BaseException] = []
    with KeyStore(tmp_path / "keys.db") as ks:

        def work(i: int) -> None:
            try:
                got[i] = ks.key_for(D0, create=True)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert len(set(got.values())) == 1  # one key for the day, whoever made it
        assert ks.key_for(D0) == got[0]


def test_reading_a_day_without_a_key_makes_none(tmp_path: Path) -> None:
    with KeyStore(tmp_path / "keys.db") as ks:
        assert ks.key_for(D0) is None  # a read: no key is made for a day that had none
        assert ks.days() == []
        made = ks.key_for(D0, create=True)
        assert made is not None and ks.key_for(D0) == made and ks.days() == [D0]


def test_a_checkpoint_blocked_by_a_reader_says_so(tmp_path: Path) -> None:
    """A reader on an old snapshot keeps WAL frames: not truncated, False; then True."""
    from sentinel.journal.keystore import checkpoint_truncate

    path = tmp_path / "k.db"
    writer = sqlite3.connect(path, isolation_level=None, timeout=0.05)
    reader = sqlite3.connect(path, isolation_level=None, timeout=0.05)
    try:
        writer.execute("PRAGMA journal_mode=WAL")
        writer.execute("CREATE TABLE t (x)")
        writer.execute("INSERT INTO t VALUES (1)")
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM t").fetchone() == (1,)  # snapshot held
        writer.execute("INSERT INTO t VALUES (2)")
        assert checkpoint_truncate(writer, attempts=2) is False
        assert (tmp_path / "k.db-wal").stat().st_size > 0
        reader.execute("COMMIT")
        assert checkpoint_truncate(writer) is True
        assert (tmp_path / "k.db-wal").stat().st_size == 0
    finally:
        reader.close()
        writer.close()


def test_a_destruction_the_disk_refuses_is_an_error_and_keeps_the_store_usable(
    tmp_path: Path,
) -> None:
    """On a full (real, small tmpfs) disk the delete cannot be written: JournalError, no
    day reported destroyed, the transaction rolled back, and once there is room again
    the same destruction goes through on the same connection."""
    from sentinel.errors import JournalError
    from tests.smallfs import fill, tmpfs

    with tmpfs(tmp_path / "m", "2m") as m:
        days = [D0 + timedelta(days=k) for k in range(200)]
        with KeyStore(m / "keys.db") as ks:
            for d in days:
                ks.key_for(d, create=True)
            assert ks.shrink()
            filler = fill(m, 0)
            with pytest.raises(JournalError, match="day keys not destroyed"):
                ks.destroy(days[:150])
            assert ks.days() == days  # nothing was destroyed
            filler.unlink()
            assert ks.destroy(days[:150]) == days[:150]
            assert ks.days() == days[150:]


def test_a_checkpoint_the_disk_refuses_after_a_destruction_is_an_error(tmp_path: Path) -> None:
    """The keys are deleted (committed into WAL space already allocated) but the checkpoint
    must grow the database file, which a full disk refuses: the old key pages are still in
    the WAL, so the destruction is not reported done (JournalError), and once there is room
    the next shrink empties the WAL."""
    import secrets

    from sentinel.errors import JournalError
    from tests.smallfs import fill, tmpfs

    with tmpfs(tmp_path / "m", "4m") as m:
        days = [D0 + timedelta(days=k) for k in range(400)]
        path = m / "keys.db"
        with KeyStore(path) as ks:
            for d in days[:60]:  # one commit each: a WAL of a few hundred frames
                ks.key_for(d, create=True)
            other = sqlite3.connect(path, isolation_level=None)
            try:
                # the frames all copied back, the WAL file left at its size: the next
                # writer reuses it from the start, so its commits need no new blocks
                assert other.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[0] == 0
                other.execute("BEGIN IMMEDIATE")  # pages past the database's end, in the WAL
                other.executemany(
                    "INSERT INTO day_keys VALUES (?, ?, '')",
                    [(d.isoformat(), secrets.token_bytes(32)) for d in days[60:]],
                )
                other.execute("COMMIT")
            finally:
                other.close()
            wal = (m / "keys.db-wal").stat().st_size
            filler = fill(m, 0)
            with pytest.raises(JournalError, match="WAL not truncated"):
                ks.destroy(days[:5])
            assert ks.days() == days[5:]  # deleted, but copies remain in the WAL
            assert (m / "keys.db-wal").stat().st_size == wal
            filler.unlink()
            assert ks.shrink() is True
            assert (m / "keys.db-wal").stat().st_size == 0


def test_an_interrupt_inside_a_destruction_rolls_it_back_and_goes_on_up(tmp_path: Path) -> None:
    """Ctrl-C (a real SIGINT) while the keys are being looked up inside the transaction:
    KeyboardInterrupt reaches the caller, nothing is destroyed, no transaction or write
    lock is left behind, and the same destruction then goes through."""
    from tests.interrupt import sigint_during

    path = tmp_path / "keys.db"
    days = [D0 + timedelta(days=k) for k in range(5)]
    with KeyStore(path) as ks:
        for d in days:
            ks.key_for(d, create=True)
        with sigint_during(ks.conn, "<listcomp>") as landed, pytest.raises(KeyboardInterrupt):
            ks.destroy(days[:3])
        assert len(landed) == 1  # in the key look-up, inside the transaction
        assert not ks.conn.in_transaction
        assert ks.days() == days
        other = sqlite3.connect(path, isolation_level=None, timeout=0)
        try:
            other.execute("BEGIN IMMEDIATE")  # the write lock is free
            other.execute("ROLLBACK")
        finally:
            other.close()
        assert ks.destroy(days[:3]) == days[:3]
        assert ks.days() == days[3:]


def test_a_vacuum_that_fails_still_leaves_the_wal_truncated(tmp_path: Path) -> None:
    """``shrink`` on a disk too full to VACUUM: the free pages stay (zeroed by
    secure_delete), the error is not raised, and the WAL is truncated all the same. The
    VACUUM's failure is SQLite's own error, raised by a connection wrapper."""
    import sqlite3

    seen: list[str] = []

    class VacuumFails:
        def __init__(self, real: sqlite3.Connection) -> None:
            self._real = real

        def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
            if sql.strip().upper() == "VACUUM":
                seen.append(sql)
                raise sqlite3.OperationalError("database or disk is full")
            if "freelist_count" in sql:  # free pages to reclaim, as after a purge
                return self._real.execute("SELECT 1")
            return self._real.execute(sql, *args)

        def __getattr__(self, name: str) -> object:
            return getattr(self._real, name)

    days = [D0 + timedelta(days=k) for k in range(200)]
    with KeyStore(tmp_path / "keys.db") as ks:
        for d in days:
            ks.key_for(d, create=True)
        ks.destroy(days[:150])
        real = ks._conn
        ks._conn = VacuumFails(real)  # type: ignore[assignment]
        try:
            assert ks.shrink() is True
        finally:
            ks._conn = real
        assert seen == ["VACUUM"]  # the VACUUM was tried, and failed
        assert ks.days() == days[150:]
    wal = tmp_path / "keys.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0

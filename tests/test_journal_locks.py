"""The journal's locks and error translations, on real parts: SQLite files in tmp_path and
real threads.

The journal, its key store and the audit log each keep one SQLite connection that the gate,
the web and the purge threads share, and each holds a lock across a BEGIN ... COMMIT on it.
A lock is tested by stopping one thread inside its transaction (a thin wrapper around the
connection, ``_Conn``, or a patched Python method) until the other thread has done its step
or 1 s has passed: with the lock the other thread waits, so the first goes on alone after
the second; without it the other thread's step lands inside the first one's transaction.
No sleeps: events and barriers with a timeout.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sentinel.errors import JournalError
from sentinel.journal import Event, Journal
from sentinel.journal import audit as audit_mod
from sentinel.journal import purge as purge_mod
from sentinel.journal.audit import AuditLog, open_audit
from sentinel.journal.keystore import KeyStore
from sentinel.journal.purge import audited_purges, purge, retention_state, run_purge
from sentinel.journal.space import DiskFull
from tests.threads import run_together

NOW = datetime(2022, 5, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
WAIT = 1.0  # how long a thread held inside a locked step waits for the other one


def _ev(t: datetime) -> Event:
    return Event(t, "venue-1", "g1", "refuse", "EXPIRED", "dcc_vaccination", "b7")


class _Conn:
    """A shared connection seen through ``around(sql, run)`` for each statement: ``run()``
    executes it on the real connection (sqlite3.Connection's own methods cannot be patched;
    the modules read the connection through an attribute, so this stands in for it)."""

    def __init__(self, real: Any, around: Callable[[str, Callable[[], Any]], Any]) -> None:
        self._real = real
        self._around = around

    def execute(self, sql: str, params: Any = ()) -> Any:
        return self._around(sql, lambda: self._real.execute(sql, params))

    def executemany(self, sql: str, rows: Any) -> Any:
        return self._around(sql, lambda: self._real.executemany(sql, rows))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class _Held:
    """One thread held inside a step (``hold``) until another has done its own (``then``),
    ``WAIT`` s at most: ``inside`` is set once the first is there."""

    def __init__(self) -> None:
        self.inside = threading.Event()
        self.done = threading.Event()

    def hold(self) -> None:
        self.inside.set()
        self.done.wait(WAIT)

    def then(self, step: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            assert self.inside.wait(5), "the first thread never got inside"
            try:
                return step()
            finally:
                self.done.set()

        return run


def _failing_io() -> sqlite3.OperationalError:
    return sqlite3.OperationalError("disk I/O error")


# -- audit.py ------------------------------------------------------------------------------


def test_two_first_opens_of_the_audit_log_take_turns(tmp_path: Path, monkeypatch) -> None:
    """The first open switches a new file to WAL and creates the table, under the append
    lock (flock on audit.lock): the daemon and ``sentinel purge`` starting together would
    otherwise race for the switch ("database is locked").  Two threads opening the same
    new log: the second's open starts only after the first's is done."""
    barrier = threading.Barrier(2, timeout=WAIT)
    met: list[bool] = []
    real_connect = sqlite3.connect

    class _Sqlite:  # the audit module's view of sqlite3, its connect held until both meet
        Error = sqlite3.Error

        @staticmethod
        def connect(*a: Any, **kw: Any) -> sqlite3.Connection:
            conn = real_connect(*a, **kw)
            try:
                barrier.wait()
                met.append(True)
            except threading.BrokenBarrierError:
                met.append(False)
            return conn

    db, key = tmp_path / "audit.db", tmp_path / "device_key.pem"
    AuditLog(db, key).close()  # the key exists; the database is made new below
    for p in tmp_path.glob("audit.*"):
        p.unlink()
    monkeypatch.setattr(audit_mod, "sqlite3", _Sqlite)
    logs = run_together(lambda: AuditLog(db, key), lambda: AuditLog(db, key))
    try:
        assert all(isinstance(a, AuditLog) for a in logs), logs
        assert met == [False, False]  # never both inside an open at once
        assert logs[0].append("login", {"user": "a"}) == 1
        assert logs[1].append("login", {"user": "b"}) == 2
        assert logs[0].verify().entries == 2
    finally:
        for a in logs:
            if isinstance(a, AuditLog):
                a.close()


def test_a_head_record_that_cannot_be_written_leaves_a_warning_and_the_entry(
    tmp_path: Path, monkeypatch, caplog
) -> None:
    """The entry is committed before the head record is written; a full disk at that point
    costs only the head's update (a warning): append still returns the entry's number, and
    the chain verifies, running one past its head."""
    with open_audit(tmp_path) as log:
        assert log.append("login", {"user": "a"}) == 1

        def no_room(path: Path, data: bytes) -> None:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))

        with monkeypatch.context() as mp:
            mp.setattr(audit_mod, "_write_atomic", no_room)
            with caplog.at_level(logging.WARNING, logger="sentinel.journal.audit"):
                assert log.append("login", {"user": "b"}) == 2
        assert any("head record not updated" in r.getMessage() for r in caplog.records)
        assert log.head() is not None and log.head()["seq"] == 1
        assert log.verify().entries == 2
        assert log.append("login", {"user": "c"}) == 3
        assert log.head()["seq"] == 3


def test_has_purge_does_not_see_an_entry_that_is_then_rolled_back(tmp_path: Path) -> None:
    """``has_purge`` reads through the connection an append may be inside a transaction on;
    under the lock it waits for that append, so it never reports a purge entry whose
    commit then fails (the purge would mark the day audited with no entry in the chain)."""
    held = _Held()
    with open_audit(tmp_path) as log:

        def around(sql: str, run: Callable[[], Any]) -> Any:
            if sql == "COMMIT":
                held.hold()
                raise _failing_io()
            return run()

        log.conn = _Conn(log.conn, around)  # type: ignore[assignment]
        got = run_together(
            lambda: log.append("purge", {"purge_id": "day:2022-04-20"}),
            held.then(lambda: log.has_purge("day:2022-04-20")),
        )
        assert isinstance(got[0], JournalError) and "not appended" in str(got[0])
        assert got[1] is False
        assert not log.has_purge("day:2022-04-20") and log.entries() == []


def test_close_waits_for_an_append_in_progress(tmp_path: Path) -> None:
    """The web thread closing the log while the purge thread is between its INSERT and
    COMMIT: close waits, so the entry is committed (and its head written) first."""
    held = _Held()
    log = open_audit(tmp_path)

    def around(sql: str, run: Callable[[], Any]) -> Any:
        if sql == "COMMIT":
            held.hold()
        return run()

    log.conn = _Conn(log.conn, around)  # type: ignore[assignment]
    got = run_together(lambda: log.append("login", {"user": "a"}), held.then(log.close))
    assert got == [1, None], got
    with pytest.raises(JournalError, match="closed"):
        log.append("login", {"user": "b"})
    with open_audit(tmp_path) as again:
        assert again.verify().entries == 1 and again.head()["seq"] == 1


# -- keystore.py ---------------------------------------------------------------------------


def _store_with_keys(tmp_path: Path, *days: date) -> KeyStore:
    ks = KeyStore(tmp_path / "keys.db")
    for d in days:
        ks.key_for(d, create=True)
    return ks


def test_two_destroys_at_once_are_two_transactions(tmp_path: Path) -> None:
    """The purge and a second purge (or the web's "forget now") destroying keys on the one
    connection: the second waits instead of beginning inside the first's transaction."""
    d1, d2 = date(2022, 4, 1), date(2022, 4, 2)
    barrier = threading.Barrier(2, timeout=WAIT)
    with _store_with_keys(tmp_path, d1, d2, date(2022, 5, 1)) as ks:

        def around(sql: str, run: Callable[[], Any]) -> Any:
            if sql.startswith("DELETE"):
                with contextlib.suppress(threading.BrokenBarrierError):
                    barrier.wait()
            return run()

        ks._conn = _Conn(ks._conn, around)  # type: ignore[assignment]
        got = run_together(lambda: ks.destroy([d1]), lambda: ks.destroy([d2]))
        assert got == [[d1], [d2]], got
        assert ks.days() == [date(2022, 5, 1)]


def test_shrink_waits_for_a_destroy_in_progress(tmp_path: Path) -> None:
    """``shrink`` (VACUUM, WAL checkpoint) called while another thread is inside a
    destroy's transaction on the same connection: it waits, then both succeed."""
    d1 = date(2022, 4, 1)
    held = _Held()
    with _store_with_keys(tmp_path, d1, date(2022, 5, 1)) as ks:

        def around(sql: str, run: Callable[[], Any]) -> Any:
            if sql.startswith("DELETE"):
                held.hold()
            return run()

        ks._conn = _Conn(ks._conn, around)  # type: ignore[assignment]
        got = run_together(lambda: ks.destroy([d1]), held.then(ks.shrink))
        assert got == [[d1], True], got
        assert ks.days() == [date(2022, 5, 1)]


def test_the_pseudonym_key_is_not_lost_with_a_destroy_rolled_back(tmp_path: Path) -> None:
    """The gate thread asking for the pseudonym key (created on first use) while the purge
    is inside a destroy that then fails: it waits for the rollback, so the key it got is
    the one kept, and pseudonyms stay the same across the failure."""
    d1 = date(2022, 4, 1)
    held = _Held()
    with _store_with_keys(tmp_path, d1) as ks:

        def around(sql: str, run: Callable[[], Any]) -> Any:
            if sql.startswith("DELETE"):
                held.hold()
                raise _failing_io()
            return run()

        ks._conn = _Conn(ks._conn, around)  # type: ignore[assignment]
        got = run_together(lambda: ks.destroy([d1]), held.then(ks.pseudonym_key))
        assert isinstance(got[0], JournalError) and "not destroyed" in str(got[0])
        assert isinstance(got[1], bytes) and len(got[1]) == 32
        assert ks.pseudonym_key() == got[1]
        assert ks.days() == [d1]  # the failed destroy kept the key


def test_a_destroy_that_cannot_begin_is_a_journal_error(tmp_path: Path) -> None:
    """Another process (a second purge, ``sentinel purge`` beside the service) holding the
    key store's write lock past the busy timeout: ``destroy`` fails with the key store's
    own error, not SQLite's, keeps every key, and works once the other lets go."""
    d1 = date(2022, 4, 1)
    with _store_with_keys(tmp_path, d1) as ks:
        ks.conn.execute("PRAGMA busy_timeout=50")
        other = sqlite3.connect(ks.path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            with pytest.raises(JournalError, match="day keys not destroyed"):
                ks.destroy([d1])
            other.execute("ROLLBACK")
        finally:
            other.close()
        assert not ks.conn.in_transaction and ks.days() == [d1]
        assert ks.destroy([d1]) == [d1] and ks.days() == []


# -- purge.py ------------------------------------------------------------------------------


def _journal_with_old_day(tmp_path: Path, rows: int = 20, **kw: Any) -> Journal:
    t = NOW - 10 * DAY
    j = Journal(tmp_path / "journal.db", clock=lambda: t, retention_days=3, **kw)
    j.record_many(
        [(_ev(t + i * timedelta(seconds=7)), {"display_name": f"P{i}"}) for i in range(rows)]
    )
    return j


def _purge(j: Journal, audit: AuditLog) -> purge_mod.PurgeResult:
    return purge(j, audit, retention_days=3, aggregate_days=400, now=NOW)


def test_a_purge_step_that_cannot_commit_is_a_journal_error(tmp_path: Path) -> None:
    """Another process holding the journal's write lock longer than the busy timeout: the
    purge step fails with the journal's own error, rolled back, and the next run works."""
    with _journal_with_old_day(tmp_path) as j, open_audit(tmp_path) as audit:
        j.conn.execute("PRAGMA busy_timeout=50")
        other = sqlite3.connect(tmp_path / "journal.db", isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            with pytest.raises(JournalError, match="purge step not committed") as err:
                _purge(j, audit)
            assert not isinstance(err.value, DiskFull)
            other.execute("ROLLBACK")
        finally:
            other.close()
        assert not j.conn.in_transaction
        r = _purge(j, audit)
        assert r.personal_rows == 20 and r.audit_entries == 1
        assert retention_state(j, 3, NOW).ok


def test_a_vacuum_that_fails_is_skipped_with_a_warning(tmp_path: Path, caplog) -> None:
    """A journal from before incremental vacuum gets a full VACUUM when there is room; when
    SQLite refuses it (here another writer holds the file), the purge logs it and carries
    on: rows deleted, audited, ``vacuumed`` False."""
    legacy = sqlite3.connect(tmp_path / "journal.db")
    legacy.execute("PRAGMA journal_mode=WAL")  # creates the file: auto_vacuum stays NONE
    legacy.close()
    with _journal_with_old_day(tmp_path, rows=300) as j, open_audit(tmp_path) as audit:
        assert j.conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
        tried: list[str] = []

        def around(sql: str, run: Callable[[], Any]) -> Any:
            if sql != "VACUUM":
                return run()
            tried.append(sql)
            other = sqlite3.connect(tmp_path / "journal.db", isolation_level=None)
            j.conn.execute("PRAGMA busy_timeout=0")
            try:
                other.execute("BEGIN IMMEDIATE")
                return run()
            finally:
                other.close()
                j.conn.execute("PRAGMA busy_timeout=30000")

        j.conn = _Conn(j.conn, around)  # type: ignore[assignment]
        with caplog.at_level(logging.WARNING, logger="sentinel.journal.purge"):
            r = _purge(j, audit)
        assert tried == ["VACUUM"]
        assert any("VACUUM skipped" in rec.getMessage() for rec in caplog.records)
        assert r.personal_rows == 300 and r.audit_entries == 1 and not r.vacuumed
        assert retention_state(j, 3, NOW).ok


def test_a_purge_waits_for_an_event_being_recorded(tmp_path: Path, monkeypatch) -> None:
    """The gate thread recording an event (BEGIN ... COMMIT on the journal's connection)
    while the purge starts: the purge waits for the journal lock instead of beginning a
    transaction inside the gate's (which would fail both)."""
    held = _Held()
    with _journal_with_old_day(tmp_path) as j, open_audit(tmp_path) as audit:
        j.clock = lambda: NOW
        real = Journal._insert

        def insert(self: Journal, *a: Any) -> None:
            real(self, *a)
            held.hold()

        monkeypatch.setattr(Journal, "_insert", insert)
        got = run_together(lambda: j.record(_ev(NOW)), held.then(lambda: _purge(j, audit)))
        assert isinstance(got[0], str), got
        assert isinstance(got[1], purge_mod.PurgeResult), got
        assert got[1].personal_rows == 20 and got[1].audit_entries == 1
        assert [e["event_id"] for e in j.events()] == [got[0]]
        assert retention_state(j, 3, NOW).ok


def test_audited_purges_does_not_see_a_mark_that_is_then_rolled_back(tmp_path: Path) -> None:
    """``audited_purges`` (what the auditor's check compares with the chain) reads under the
    journal lock: while the purge is inside the transaction marking a day audited, it
    waits; when that commit fails it sees the day still unaudited."""
    held = _Held()
    with _journal_with_old_day(tmp_path) as j, open_audit(tmp_path) as audit:

        def around(sql: str, run: Callable[[], Any]) -> Any:
            out = run()
            if sql.startswith("UPDATE purge_log SET audited = 1"):
                held.hold()
                raise _failing_io()
            return out

        j.conn = _Conn(j.conn, around)  # type: ignore[assignment]
        got = run_together(lambda: _purge(j, audit), held.then(lambda: audited_purges(j)))
        assert isinstance(got[0], JournalError), got
        assert got[1] == [], got
        assert audited_purges(j) == []
        assert "not yet audited" in " ".join(retention_state(j, 3, NOW).problems)


def test_run_purge_closes_the_journal_and_the_audit_log(tmp_path: Path, monkeypatch) -> None:
    """``sentinel purge`` opens the data directory's journal and audit log and closes both
    when done."""
    _journal_with_old_day(tmp_path).close()
    opened: list[tuple[Journal, AuditLog]] = []
    real = purge_mod.open_parts

    def open_parts(data_dir: Any, retention_days: int) -> tuple[Journal, AuditLog]:
        parts = real(data_dir, retention_days)
        opened.append(parts)
        return parts

    monkeypatch.setattr(purge_mod, "open_parts", open_parts)
    r = run_purge(tmp_path, retention_days=3, aggregate_days=400, now=NOW)
    assert r.personal_rows == 20
    ((j, audit),) = opened
    with pytest.raises(JournalError, match="journal is closed"):
        j.record(_ev(NOW))
    with pytest.raises(JournalError, match="audit log is closed"):
        audit.append("login", {"user": "a"})

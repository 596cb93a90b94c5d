"""The retention purge: crypto-shredding, row deletion, no copies left in the raw files."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from sentinel.cli import main
from sentinel.journal import Event, Journal
from sentinel.journal.audit import open_audit
from sentinel.journal.purge import purge, retention_state

T0 = datetime(2022, 5, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


class Clock:
    def __init__(self, t: datetime) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t


def ev(t: datetime, bundle: str = "b7", decision: str = "refuse") -> Event:
    return Event(t, "venue-1", "g1", decision, "EXPIRED", "dcc_vaccination", bundle)


def raw_files(d: Path, stem: str) -> bytes:
    """Every byte of a database and its WAL (the files, not the tables)."""
    return b"".join(p.read_bytes() for p in (d / stem, d / f"{stem}-wal") if p.exists())


def _purge(j: Journal, data: Path, now: datetime, retention_days: int = 3, agg: int = 400):
    with open_audit(data) as audit:
        return purge(j, audit, retention_days=retention_days, aggregate_days=agg, now=now)


def test_purged_day_leaves_no_trace_in_raw_bytes(tmp_path: Path) -> None:
    clock = Clock(T0 - 5 * DAY)
    old_day = (T0 - 5 * DAY).date()
    with Journal(tmp_path / "journal.db", clock=clock, retention_days=3) as j:
        old_ids = [
            j.record(
                ev(T0 - 5 * DAY + i * timedelta(seconds=7), bundle="BUNDLE-OLD-ZQX"),
                personal={"display_name": f"ZQXMARKER-{i:04d}", "pseudonym": f"PSEUDO{i:04d}"},
            )
            for i in range(300)
        ]
        clock.t = T0
        kept_ids = [
            j.record(ev(T0 - i * timedelta(minutes=5)), personal={"display_name": f"KEEP-{i}"})
            for i in range(20)
        ]
        old_key = j.keys.key_for(old_day)
        assert old_key is not None
        cts = [
            bytes(r[0])
            for r in j.conn.execute("SELECT ct FROM personal WHERE day = ?", (old_day.isoformat(),))
        ]
        assert len(cts) == 300
        # positive controls: before the purge the raw files do hold the data
        before = raw_files(tmp_path, "journal.db")
        assert b"BUNDLE-OLD-ZQX" in before
        assert all(ct in before for ct in cts[:20])
        assert old_key in raw_files(tmp_path, "journal-keys.db")
        assert b"ZQXMARKER" not in before  # personal fields were never in plaintext

        result = _purge(j, tmp_path, T0)
        assert result.days == (old_day,) and result.keys_destroyed == 1
        assert (result.personal_rows, result.event_rows) == (300, 300)
        assert result.wal_truncated

        def check_no_trace() -> None:
            journal_raw = raw_files(tmp_path, "journal.db")
            keys_raw = raw_files(tmp_path, "journal-keys.db")
            for blob in (journal_raw, keys_raw):
                assert b"BUNDLE-OLD-ZQX" not in blob
                assert b"ZQXMARKER" not in blob and b"PSEUDO0" not in blob
                assert old_key not in blob
                assert not any(ct[:24] in blob for ct in cts)

        check_no_trace()  # with the journal still open
        assert [j.personal(e) for e in old_ids[:3]] == [None, None, None]
        assert all(j.personal(e) is not None for e in kept_ids)
        assert {r["event_id"] for r in j.events()} == set(kept_ids)
    check_no_trace()  # and after close
    for p in tmp_path.glob("journal*-wal"):
        assert p.stat().st_size == 0


def test_purge_is_idempotent_and_audited_once(tmp_path: Path) -> None:
    clock = Clock(T0 - 10 * DAY)
    with Journal(tmp_path / "journal.db", clock=clock, retention_days=3) as j:
        for k in range(10):
            clock.t = T0 - k * DAY
            for i in range(3):
                j.record(ev(clock.t + i * timedelta(minutes=1)), personal={"display_name": "N*"})
        clock.t = T0
        first = _purge(j, tmp_path, T0)
        assert [d.isoformat() for d in first.days] == [
            (T0 - k * DAY).date().isoformat() for k in range(9, 2, -1)
        ]
        assert first.audit_entries == 7 and first.event_rows == 21
        second = _purge(j, tmp_path, T0)
        assert second.days == () and second.audit_entries == 0 and second.event_rows == 0
        assert j.keys.days() == [(T0 - k * DAY).date() for k in (2, 1, 0)]
        assert len(j.events()) == 9
        state = retention_state(j, 3, T0)
        assert state.ok and state.oldest_key_day == (T0 - 2 * DAY).date()
        # the next day one more day falls out
        third = _purge(j, tmp_path, T0 + DAY)
        assert third.days == ((T0 - 2 * DAY).date(),)
        # the purge log says when the purge that took each day ran (the purge's clock)
        started = j.conn.execute(
            "SELECT started, count(*) FROM purge_log WHERE scope = 'day' GROUP BY started"
        ).fetchall()
        assert started == [(T0.isoformat(), 7), ((T0 + DAY).isoformat(), 1)]
    with open_audit(tmp_path) as audit:
        entries = audit.entries()
        audit.verify()
    details = [json.loads(e["details"]) for e in entries]
    assert [d["day"] for d in details] == sorted(d["day"] for d in details)
    assert len({d["purge_id"] for d in details}) == 8
    assert all(d["key_destroyed"] and d["event_rows"] == 3 for d in details)
    assert all(d["personal_rows"] == 3 and d["retention_days"] == 3 for d in details)
    # each entry is dated by the purge's own clock (T0, then T0 + 1 day), not the wall clock
    times = [datetime.fromisoformat(e["time"]) for e in entries]
    assert times == [T0] * 7 + [T0 + DAY]


def test_retention_state_names_what_is_overdue(tmp_path: Path) -> None:
    clock = Clock(T0 - 4 * DAY)
    with Journal(tmp_path / "journal.db", clock=clock, retention_days=3) as j:
        j.record(ev(clock.t), personal={"display_name": "Z*"})
        clock.t = T0
        j.record(ev(clock.t), personal={"display_name": "Y*"})  # today's key: in the window
        state = retention_state(j, 3, T0)
        assert not state.ok
        (keys,) = [p for p in state.problems if "day key" in p]
        assert keys.endswith(": 2022-04-27"), keys  # the overdue day only, not today's
        assert any("personal rows" in p for p in state.problems)


def test_aggregates_outlive_personal_data_then_go(tmp_path: Path) -> None:
    clock = Clock(T0 - 20 * DAY)
    with Journal(tmp_path / "journal.db", clock=clock, retention_days=3) as j:
        j.record(ev(clock.t), personal={"display_name": "A*"})
        j.record(ev(clock.t, decision="admit"))
        clock.t = T0
        _purge(j, tmp_path, T0, agg=30)
        assert j.events() == []
        counts = j.daily_counts(date(2022, 1, 1), date(2022, 12, 31))
        assert sorted((c["decision"], c["count"]) for c in counts) == [("admit", 1), ("refuse", 1)]
        r = _purge(j, tmp_path, T0 + 11 * DAY, agg=30)
        assert r.count_rows == 2
        assert j.daily_counts(date(2022, 1, 1), date(2022, 12, 31)) == []
    with open_audit(tmp_path) as audit:
        last = json.loads(audit.entries()[-1]["details"])
    assert last["scope"] == "aggregates" and last["count_rows"] == 2


def test_rows_reappearing_for_a_purged_day_are_purged_again(tmp_path: Path) -> None:
    clock = Clock(T0 - 5 * DAY)
    with Journal(tmp_path / "journal.db", clock=clock, retention_days=3) as j:
        j.record(ev(clock.t))
        clock.t = T0
        _purge(j, tmp_path, T0)
        j.record(ev(T0 - 5 * DAY))  # e.g. an import, or a clock that was set back
        r = _purge(j, tmp_path, T0)
        assert r.event_rows == 1 and r.audit_entries == 1
    with open_audit(tmp_path) as audit:
        ids = [json.loads(e["details"])["purge_id"] for e in audit.entries()]
    assert ids == ["day:2022-04-26", "day:2022-04-26#2"]


def test_cli_purge_verify_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "s.toml"
    conf.write_text('data_dir = "data"\n[retention]\nretention_days = 3\n', encoding="utf-8")
    data = tmp_path / "data"
    clock = Clock(T0 - 6 * DAY)
    with Journal(data / "journal.db", clock=clock, retention_days=3) as j:
        j.record(ev(clock.t), personal={"display_name": "Q*"})
        clock.t = T0
        j.record(ev(T0), personal={"display_name": "R*"})
    now = ["--now", T0.isoformat()]
    assert main(["audit", "verify", "-c", str(conf), *now]) == 1
    err = capsys.readouterr().err
    assert "retention: FAILED" in err and "2022-04-25" in err
    early = tmp_path / "early.json"  # exported before the purge: the signed statement says so
    assert main(["audit", "export", "-c", str(conf), "--out", str(early), *now]) == 0
    capsys.readouterr()
    assert main(["audit", "verify", "--file", str(early)]) == 1
    assert "promise NOT kept" in capsys.readouterr().err
    assert main(["purge", "-c", str(conf), "--progress", *now]) == 0
    out = capsys.readouterr().out
    assert "purged days: 2022-04-25" in out and "keys destroyed 1" in out
    assert main(["audit", "verify", "-c", str(conf), *now]) == 0
    out = capsys.readouterr().out
    assert "2 entries, whole" in out and "promise kept" in out
    export = tmp_path / "audit.json"
    assert main(["audit", "export", "-c", str(conf), "--out", str(export), *now]) == 0
    capsys.readouterr()
    assert main(["audit", "verify", "--file", str(export)]) == 0
    out = capsys.readouterr().out
    assert "3 entries, whole" in out and "promise kept" in out


class _AuditDown:
    """An audit log that fails on append (disk trouble, a crash between the two writes)."""

    def __init__(self, real) -> None:  # type: ignore[no-untyped-def]
        self.real = real

    def has_purge(self, purge_id: str) -> bool:
        return self.real.has_purge(purge_id)

    def append(self, *a: object, **kw: object) -> int:
        from sentinel.errors import JournalError

        raise JournalError("audit.db: disk I/O error")


def test_retention_state_names_leftover_events_and_unaudited_purges(tmp_path: Path) -> None:
    clock = Clock(T0 - 5 * DAY)
    with Journal(tmp_path / "journal.db", clock=clock, retention_days=3) as j:
        j.record(ev(T0 - 5 * DAY))  # an event row without personal fields: no day key
        clock.t = T0
        j.record(ev(T0))
        before = retention_state(j, 3, T0)
        assert any("event rows older than the window" in p for p in before.problems)
        with open_audit(tmp_path) as audit, pytest.raises(Exception, match="disk I/O"):
            purge(j, _AuditDown(audit), retention_days=3, aggregate_days=400, now=T0)  # type: ignore[arg-type]
        half = retention_state(j, 3, T0)
        assert [p for p in half.problems if "not yet audited" in p], half.problems
        assert not any("event rows older" in p for p in half.problems)  # the rows are gone
        _purge(j, tmp_path, T0)
        assert retention_state(j, 3, T0).problems == ()


def test_audit_says_key_destroyed_only_for_days_that_had_a_key(tmp_path: Path) -> None:
    clock = Clock(T0 - 6 * DAY)
    with Journal(tmp_path / "journal.db", clock=clock, retention_days=3) as j:
        j.record(ev(T0 - 6 * DAY))  # no personal fields: no key for that day
        clock.t = T0 - 5 * DAY
        j.record(ev(T0 - 5 * DAY), personal={"display_name": "A***"})
        clock.t = T0
        r = _purge(j, tmp_path, T0)
    # the day with event rows only is found from its rows, not from a key
    assert r.days == ((T0 - 6 * DAY).date(), (T0 - 5 * DAY).date())
    assert (r.keys_destroyed, r.event_rows, r.personal_rows) == (1, 2, 1)
    with open_audit(tmp_path) as audit:
        days = {
            d["day"]: d["key_destroyed"]
            for d in (json.loads(e["details"]) for e in audit.entries() if e["kind"] == "purge")
            if d.get("scope") == "day"
        }
    assert days == {
        (T0 - 6 * DAY).date().isoformat(): False,
        (T0 - 5 * DAY).date().isoformat(): True,
    }


def test_rows_another_process_writes_for_an_old_day_mid_purge_are_audited_without_a_key(
    tmp_path: Path,
) -> None:
    """The daemon keeps recording while `sentinel purge` runs: an event it writes for an
    expired day after the purge planned (a clock set back) is deleted in the same run and
    audited under its own purge_id, saying no key was destroyed (none existed)."""
    clock = Clock(T0 - 5 * DAY)
    with Journal(tmp_path / "journal.db", clock=clock, retention_days=3) as j:
        j.record(ev(T0 - 5 * DAY), personal={"display_name": "A***"})
        clock.t = T0
        daemon = Journal(tmp_path / "journal.db", clock=lambda: T0, retention_days=3)
        late = T0 - 6 * DAY

        def progress(step: str) -> None:  # after the plan, before keys and rows go
            if step.startswith("planned"):
                daemon.record(ev(late))

        try:
            with open_audit(tmp_path) as audit:
                r = purge(j, audit, retention_days=3, aggregate_days=400, now=T0, progress=progress)
        finally:
            daemon.close()
        assert r.days == ((T0 - 5 * DAY).date(),) and r.event_rows == 2
        assert j.events() == [] and retention_state(j, 3, T0).ok
    with open_audit(tmp_path) as audit:
        details = [json.loads(e["details"]) for e in audit.entries() if e["kind"] == "purge"]
    assert {(d["day"], d["key_destroyed"], d["event_rows"]) for d in details} == {
        (late.date().isoformat(), False, 1),
        ((T0 - 5 * DAY).date().isoformat(), True, 1),
    }


def test_an_interrupted_purge_step_rolls_back_goes_on_up_and_completes_next_run(
    tmp_path: Path,
) -> None:
    """Ctrl-C (a real SIGINT, tests/interrupt.py) while a batch of rows is being deleted:
    KeyboardInterrupt reaches the caller, the batch's transaction is rolled back (no
    transaction or write lock left), and the next run purges and audits the day once."""
    from tests.interrupt import sigint_during

    clock = Clock(T0 - 5 * DAY)
    with Journal(tmp_path / "journal.db", clock=clock, retention_days=3) as j:
        for i in range(5):
            j.record(ev(T0 - 5 * DAY + i * timedelta(minutes=1)), personal={"display_name": "A*"})
        clock.t = T0
        where: list[list[str]] = []
        with contextlib.ExitStack() as stack:

            def progress(step: str) -> None:  # keys gone; the row batches come next
                if step.startswith("destroyed"):
                    where.append(stack.enter_context(sigint_during(j.conn, "delete_batch")))

            with open_audit(tmp_path) as audit, pytest.raises(KeyboardInterrupt):
                purge(j, audit, retention_days=3, aggregate_days=400, now=T0, progress=progress)
        assert len(where) == 1 and len(where[0]) == 1  # fired once, in the batch
        assert not j.conn.in_transaction
        assert len(j.events()) == 5  # the batch was not committed
        r = _purge(j, tmp_path, T0)
        assert (r.event_rows, r.personal_rows, r.audit_entries) == (5, 5, 1)
        assert retention_state(j, 3, T0).ok


def test_a_purge_whose_audit_log_cannot_open_stops_with_its_error_and_closes_the_journal(
    tmp_path: Path,
) -> None:
    """A damaged device key (here: not a PEM key) stops `sentinel purge` with the key's
    own error, naming the file, not a crash of its own, and the journal it opened is
    closed again."""
    import os

    from sentinel.errors import JournalError
    from sentinel.journal.purge import run_purge

    with Journal(tmp_path / "journal.db", retention_days=3) as j:
        j.record(ev(T0))
    (tmp_path / "device_key.pem").write_text("not a key\n", encoding="utf-8")
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(JournalError, match="device_key.pem: the device key is damaged"):
        run_purge(tmp_path, retention_days=3, aggregate_days=400, now=T0)
    assert len(os.listdir("/proc/self/fd")) == before  # the journal was closed


def test_a_purge_reports_each_step_and_ends_with_an_empty_wal(tmp_path: Path) -> None:
    clock = Clock(T0 - 5 * DAY)
    with Journal(tmp_path / "journal.db", clock=clock, retention_days=3) as j:
        j.record(ev(T0 - 5 * DAY), personal={"display_name": "A*"})
        clock.t = T0
        steps: list[str] = []
        with open_audit(tmp_path) as audit:
            purge(j, audit, retention_days=3, aggregate_days=400, now=T0, progress=steps.append)
        assert [s.split()[0] for s in steps] == [
            "planned",
            "destroyed",
            "deleted",
            "wal",
            "audited",
        ], steps
        assert steps[-1] == f"audited day:{(T0 - 5 * DAY).date().isoformat()}"
        assert (tmp_path / "journal.db-wal").stat().st_size == 0  # the audited marks too


def test_the_retention_state_an_auditor_exports_names_its_days(tmp_path: Path) -> None:
    """``as_dict`` (what ``sentinel audit export`` signs into the chain): each oldest day as
    an ISO date, the empty ones as null; an empty journal has no oldest day at all."""
    clock = Clock(T0 - 2 * DAY)
    with Journal(tmp_path / "journal.db", clock=clock, retention_days=3) as j:
        empty = retention_state(j, 3, T0).as_dict()
        assert empty["oldest_event_day"] is None and empty["oldest_personal_day"] is None
        j.record(ev(clock.t), personal={"display_name": "Q*"})
        clock.t = T0
        got = retention_state(j, 3, T0).as_dict()
    day = (T0 - 2 * DAY).date().isoformat()
    assert (got["oldest_event_day"], got["oldest_personal_day"], got["oldest_key_day"]) == (
        day,
        day,
        day,
    )
    assert got["first_kept_day"] == day  # three days kept: today and the two before
    assert got["retention_days"] == 3 and got["ok"] is True


def test_purge_ids_skip_entries_whose_details_are_not_a_json_object() -> None:
    """An audit chain read back from disk is data: a purge entry whose details are not
    JSON, or JSON but not an object, is skipped, never a crash of the verifier."""
    from sentinel.journal.purge import chain_purge_ids

    entries = [
        {"kind": "purge", "details": json.dumps({"purge_id": "p1"})},
        {"kind": "purge", "details": "{not json"},  # ValueError
        {"kind": "purge", "details": json.dumps(["purge_id", "p2"])},  # a list: AttributeError
        {"kind": "purge", "details": json.dumps({"scope": "x"})},  # no id
        {"kind": "bundle", "details": json.dumps({"purge_id": "p3"})},  # not a purge
    ]
    assert chain_purge_ids(entries) == {"p1"}


def test_the_wal_is_truncated_after_the_vacuum_of_an_old_journal(tmp_path, monkeypatch) -> None:
    """A full VACUUM of a journal from before incremental vacuum writes the whole file again
    through the WAL: the purge truncates the WAL after it, and reports that truncation
    (here every truncation before the VACUUM is made to report failure, so only the one
    after it can make ``wal_truncated`` true)."""
    import sqlite3

    from sentinel.journal import purge as pg

    d = tmp_path / "data"
    d.mkdir()
    legacy = sqlite3.connect(d / "journal.db")
    legacy.execute("PRAGMA journal_mode=WAL")  # creates the file: auto_vacuum stays NONE
    legacy.close()
    j = Journal(d / "journal.db", clock=Clock(T0 - 20 * DAY))
    j.record_many([(ev(T0 - 20 * DAY), {"display_name": f"P{i}"}) for i in range(500)])
    j.close()
    calls: list[str] = []
    real_truncate, real_reclaim = pg.checkpoint_truncate, pg._reclaim

    def truncate(conn, *a, **kw):
        done = real_truncate(conn, *a, **kw)
        calls.append("truncate")
        return done if "vacuum" in calls else False

    def reclaim(*a, **kw):
        vacuumed = real_reclaim(*a, **kw)
        calls.append("vacuum" if vacuumed else "no vacuum")
        return vacuumed

    monkeypatch.setattr(pg, "checkpoint_truncate", truncate)
    monkeypatch.setattr(pg, "_reclaim", reclaim)
    r = pg.run_purge(d, retention_days=14, aggregate_days=400, now=T0)
    assert r.event_rows == 500 and r.vacuumed
    assert "truncate" in calls[calls.index("vacuum") :]
    assert r.wal_truncated


def test_a_purge_without_a_given_time_purges_as_of_now(tmp_path) -> None:
    """``run_purge`` as the timer calls it (no ``now``): the device's clock decides what is
    past retention."""
    from sentinel.journal.purge import run_purge

    real_now = datetime.now(UTC)
    j = Journal(tmp_path / "journal.db", clock=Clock(real_now - 20 * DAY))
    j.record(ev(real_now - 20 * DAY), personal={"display_name": "Old"})
    j.close()
    j = Journal(tmp_path / "journal.db", clock=Clock(real_now))
    j.record(ev(real_now), personal={"display_name": "New"})
    j.close()
    r = run_purge(tmp_path, retention_days=14, aggregate_days=400)
    assert r.event_rows == 1
    with Journal(tmp_path / "journal.db") as j:
        assert j.conn.execute("SELECT count(*) FROM events").fetchone()[0] == 1

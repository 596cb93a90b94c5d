"""The journal: events, encrypted personal fields, the key store, queries, aggregates."""

from __future__ import annotations

import stat
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from sentinel.authority import dcc_issue as di
from sentinel.config import Config, replace
from sentinel.credentials.trustlist import TrustList
from sentinel.errors import JournalError
from sentinel.gate import Gate
from sentinel.journal import Event, Journal, Personal
from sentinel.pipeline import Pipeline
from sentinel.scan import Symbol
from sentinel.trust import StaticTrust

T0 = datetime(2022, 5, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


class Clock:
    def __init__(self, t: datetime) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t


def ev(t: datetime, decision: str = "refuse", reason: str = "EXPIRED", gate: str = "g1") -> Event:
    return Event(t, "venue-1", gate, decision, reason, "dcc_vaccination", "b7")


def test_record_personal_roundtrip_and_columns(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.db", clock=Clock(T0)) as j:
        eid = j.record(ev(T0), personal=Personal("M****** E****, 1974", "D*****123", "ab" * 16))
        plain = j.record(ev(T0, "admit", "ADMIT"))
        rows = j.events()
        assert [r["event_id"] for r in rows] == [eid, plain]
        assert set(rows[0]) == {
            "event_id",
            "time",
            "venue",
            "gate",
            "decision",
            "reason",
            "credential_kind",
            "bundle_version",
        }
        assert j.personal(eid) == {
            "display_name": "M****** E****, 1974",
            "document_masked": "D*****123",
            "pseudonym": "ab" * 16,
        }
        assert j.personal(plain) is None  # nothing personal was given
        assert j.personal("no-such-event") is None
    raw = (tmp_path / "j.db").read_bytes() + (tmp_path / "j-keys.db").read_bytes()
    assert b"E****" not in raw and b"D*****123" not in raw


def test_key_store_is_separate_and_private(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.db", clock=Clock(T0)) as j:
        j.record(ev(T0), personal={"display_name": "X* Y*"})
        assert j.keys.days() == [T0.date()]
        key = j.keys.key_for(T0.date())
        assert key is not None and len(key) == 32
        mode = stat.S_IMODE((tmp_path / "j-keys.db").stat().st_mode)
        assert mode == 0o600
        wal = tmp_path / "j-keys.db-wal"
        assert wal.exists()  # WAL mode: the key store's write-ahead log is private too
        assert stat.S_IMODE(wal.stat().st_mode) == 0o600
        # the key is not in the journal file
        assert key not in (tmp_path / "j.db").read_bytes()
        # the pseudonym key is stable across opens and differs from day keys
        pk = j.pseudonym_key()
    with Journal(tmp_path / "j.db", clock=Clock(T0)) as j:
        assert j.pseudonym_key() == pk and pk != key


def test_personal_fields_only_inside_window(tmp_path: Path) -> None:
    clock = Clock(T0)
    with Journal(tmp_path / "j.db", clock=clock, retention_days=3) as j:
        old = j.record(ev(T0 - 3 * DAY), personal={"display_name": "OLD"})
        edge = j.record(ev(T0 - 2 * DAY), personal={"display_name": "EDGE"})
        assert j.personal(old) is None  # day already outside: never stored
        assert j.conn.execute("SELECT count(*) FROM personal").fetchone()[0] == 1
        assert j.personal(edge) == {"display_name": "EDGE", "document_masked": "", "pseudonym": ""}
        clock.t = T0 + DAY  # the edge day leaves the window, even before any purge
        assert j.personal(edge) is None
        assert len(j.events()) == 2  # the non-personal rows are all kept until the purge


def test_tampered_ciphertext_is_refused(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.db", clock=Clock(T0)) as j:
        a = j.record(ev(T0), personal={"display_name": "A*"})
        b = j.record(ev(T0), personal={"display_name": "B*"})
        # moving b's ciphertext onto a fails: the event id is authenticated data
        j.conn.execute(
            "UPDATE personal SET nonce=(SELECT nonce FROM personal WHERE event_id=?),"
            " ct=(SELECT ct FROM personal WHERE event_id=?) WHERE event_id=?",
            (b, b, a),
        )
        with pytest.raises(JournalError, match="authentication"):
            j.personal(a)


def test_query_filters_and_daily_counts(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.db", clock=Clock(T0)) as j:
        j.record(ev(T0 - DAY, "admit", "ADMIT"))
        j.record(ev(T0 - DAY, "refuse", "EXPIRED"))
        j.record(ev(T0, "refuse", "EXPIRED", gate="g2"), personal={"pseudonym": "p1"})
        j.record(ev(T0 + timedelta(hours=1), "refuse", "REVOKED"))
        day = j.query(T0 - DAY, T0)
        assert [r["decision"] for r in day] == ["admit", "refuse"]
        assert [r["gate"] for r in j.query(T0 - DAY, T0 + DAY, gate="g2")] == ["g2"]
        assert [r["has_personal"] for r in j.query(T0 - DAY, T0 + DAY, gate="g2")] == [1]
        refused = j.query(T0 - DAY, T0 + DAY, decision="refuse", reason="EXPIRED")
        assert len(refused) == 2
        # hostile filter values are data, never SQL
        assert j.query(T0 - DAY, T0 + DAY, gate="g1' OR '1'='1") == []
        counts = j.daily_counts(date(2022, 4, 30), date(2022, 5, 1))
        got = {(c["day"], c["gate"], c["reason"]): c["count"] for c in counts}
        assert got == {
            ("2022-04-30", "g1", "ADMIT"): 1,
            ("2022-04-30", "g1", "EXPIRED"): 1,
            ("2022-05-01", "g2", "EXPIRED"): 1,
            ("2022-05-01", "g1", "REVOKED"): 1,
        }
        with pytest.raises(JournalError, match="timezone"):
            j.query(datetime(2022, 5, 1), T0)  # noqa: DTZ001


def test_repeat_refusals_counted_by_pseudonym(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.db", clock=Clock(T0)) as j:
        for p in ("aa", "bb", "aa", "aa", "cc", "bb"):
            j.record(ev(T0), personal={"pseudonym": p})
        j.record(ev(T0, "admit", "ADMIT"), personal={"pseudonym": "aa"})
        assert j.repeat_refusals(T0 - DAY, T0 + DAY) == [("aa", 3), ("bb", 2)]


def test_concurrent_threads_record_and_read(tmp_path: Path) -> None:
    errors: list[BaseException] = []
    with Journal(tmp_path / "j.db", clock=Clock(T0)) as j:

        def writer(k: int) -> None:
            try:
                for i in range(40):
                    eid = j.record(ev(T0), personal={"display_name": f"W{k}-{i}"})
                    assert j.personal(eid) is not None
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert len(j.events()) == 160
        assert j.daily_counts(T0.date(), T0.date())[0]["count"] == 160


def test_pipeline_journals_masked_name_and_pseudonym(
    tmp_path: Path, signer: di.IssuerKey, trust: TrustList, now: datetime
) -> None:
    text = di.issue(
        di.vaccination(dn=1),
        signer,
        issued_at=now - DAY,
        expires_at=now + DAY,
        holder=di.person("Musterfrau", "Erika", "1974-08-12"),
    )
    cfg = replace(Config(), data_dir=str(tmp_path))
    with (
        Gate(cfg.gate, pin_factory=MockFactory()) as gate,
        Journal(tmp_path / "j.db", clock=Clock(now)) as journal,
    ):
        seen = []
        pipe = Pipeline(
            cfg, StaticTrust(trust), gate, journal, pseudonym_key=journal.pseudonym_key()
        )
        pipe.listeners.append(lambda e, d: seen.append(e))
        o1 = pipe.present(Symbol("QRCODE", text, text.encode()), now)
        o2 = pipe.present(Symbol("QRCODE", text, text.encode()), now)
        p1, p2 = journal.personal(o1.event_id), journal.personal(o2.event_id)
        assert p1 is not None and p2 is not None
        assert p1["display_name"] == o1.decision.display_name and "*" in p1["display_name"]
        assert len(p1["pseudonym"]) == 32 and p1["pseudonym"] == p2["pseudonym"]
        assert journal.repeat_refusals(now - DAY, now + DAY) == [(p1["pseudonym"], 2)]
        assert len(seen) == 2  # listeners got the events, which carry nothing personal
    raw = (tmp_path / "j.db").read_bytes()
    assert b"Musterfrau" not in raw and b"M*********" not in raw


def test_failed_record_rolls_back_whole_event(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.db", clock=Clock(T0)) as j:
        e = Event(T0, "v", "g", "refuse", "EXPIRED", "c", event_id="fixed-id")
        j.record(e, personal={"display_name": "A*"})
        with pytest.raises(JournalError, match="not recorded"):
            j.record(e, personal={"display_name": "B*"})
        assert len(j.events()) == 1
        assert j.daily_counts(T0.date(), T0.date())[0]["count"] == 1  # not counted twice
        assert j.personal("fixed-id") == {
            "display_name": "A*",
            "document_masked": "",
            "pseudonym": "",
        }
    with pytest.raises(JournalError, match="closed"):
        j.record(e)


def test_a_world_readable_key_store_is_made_private_on_open(tmp_path: Path) -> None:
    """A key store left 0644 (a restore from backup, a careless copy) is 0600 again as
    soon as the journal opens it, before any key is read."""
    with Journal(tmp_path / "j.db", clock=Clock(T0)) as j:
        j.record(ev(T0), personal={"display_name": "X* Y*"})
    keys = tmp_path / "j-keys.db"
    keys.chmod(0o644)
    with Journal(tmp_path / "j.db", clock=Clock(T0)) as j:
        assert stat.S_IMODE(keys.stat().st_mode) == 0o600
        assert j.keys.key_for(T0.date()) is not None


def test_key_store_after_close_and_on_a_bad_file_names_the_problem(tmp_path: Path) -> None:
    from sentinel.errors import JournalError
    from sentinel.journal.keystore import KeyStore, connect

    ks = KeyStore(tmp_path / "k.db")
    assert ks.key_for(T0.date(), create=True)
    ks.close()
    with pytest.raises(JournalError, match="key store is closed"):
        ks.key_for(T0.date())
    bad = tmp_path / "not-a-db"
    bad.write_bytes(b"this is not an SQLite file at all, it is text" * 100)
    with pytest.raises(JournalError, match="cannot open database"):
        connect(bad)


def test_new_databases_hand_pages_back_incrementally(tmp_path: Path) -> None:
    """auto_vacuum=INCREMENTAL is set before WAL creates the file (purge on a full disk)."""
    from sentinel.journal.keystore import connect

    conn = connect(tmp_path / "fresh.db")
    assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # 2 = incremental
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA secure_delete").fetchone()[0] == 1
    conn.close()

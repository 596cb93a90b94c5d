"""Fleet with real parts: mosquitto on 127.0.0.1 and a throwaway PostgreSQL cluster."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest
from gpiozero.pins.mock import MockFactory

from sentinel.authority import dcc_issue as di
from sentinel.config import Config
from sentinel.credentials.trustlist import TrustList
from sentinel.fleet import central
from sentinel.fleet.mqtt import BrokerSettings
from sentinel.fleet.outbox import EXPORT_FIELDS, Outbox
from sentinel.fleet.sender import Sender
from sentinel.gate import Gate
from sentinel.journal import Event, Journal
from sentinel.pipeline import Pipeline
from sentinel.scan import Symbol
from sentinel.trust import StaticTrust
from tests.servers import Mosquitto, postgres

REASONS = ["ADMIT", "EXPIRED", "TEST_TOO_OLD", "BAD_SIGNATURE"]


@pytest.fixture(scope="module")
def pg_dsn() -> Iterator[str]:
    with postgres() as dsn:
        yield dsn


@pytest.fixture
def db(pg_dsn: str) -> Iterator[psycopg.Connection]:
    conn = psycopg.connect(pg_dsn, autocommit=True)
    central.migrate(conn)
    conn.execute(
        "TRUNCATE events, devices, managers, daily_counts, central_audit, rollup_hourly, "
        "rollup_daily, rollup_delta, alerts, "
        "areas, venue_places, office_scopes"
    )
    yield conn
    conn.close()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    b = Mosquitto(tmp_path / "mqtt")
    b.start()
    yield b
    b.stop()


def until(cond, timeout_s: float = 30.0) -> bool:  # type: ignore[no-untyped-def]
    """Wait for a condition with a deadline (polls state; never a fixed sleep)."""
    end = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True


class Device:
    """A simulated sentinel: journal + outbox in one SQLite file, and a sender."""

    def __init__(
        self, tmp: Path, venue: str, n: int, port: int, *, start: bool = True, batch: int = 100
    ) -> None:
        self.id = f"{venue}-dev{n}"
        self.venue = venue
        self.journal = Journal(tmp / f"{self.id}.db")
        self.outbox = Outbox(self.journal.path, self.id, max_rows=100_000)
        self.journal.hooks.append(self.outbox.hook)
        self.sender = Sender(
            self.outbox,
            BrokerSettings(port=port),
            venue=venue,
            device_id=self.id,
            batch_events=batch,
        )
        self.ids: list[str] = []
        if start:
            self.sender.start()

    def emit(self, k: int, base: datetime) -> None:
        for i in range(k):
            ev = Event(
                base + timedelta(seconds=len(self.ids)),
                self.venue,
                "g1",
                "refuse" if i % 3 else "admit",
                REASONS[i % len(REASONS)],
                "dcc-test",
            )
            self.ids.append(self.journal.record(ev))

    def close(self) -> None:
        self.sender.stop()
        self.outbox.close()
        self.journal.close()


def ingester(dsn: str, port: int) -> central.Ingester:
    # one ingester, plain subscription: mosquitto 2.0.11 does not restore shared
    # subscriptions from its persistence file after a restart (docs/fleet.md)
    ing = central.Ingester(dsn, BrokerSettings(port=port), client_id="central-test", group=None)
    ing.start()
    assert ing.conn.subscribed.wait(20)
    return ing


def count(db: psycopg.Connection) -> int:
    return int(db.execute("SELECT count(*) FROM events").fetchone()[0])


def test_three_devices_exactly_once(tmp_path: Path, broker: Mosquitto, db, pg_dsn) -> None:
    ing = ingester(pg_dsn, broker.port)
    devices = [Device(tmp_path, v, i, broker.port) for i, v in enumerate(["v1", "v1", "v2"])]
    base = datetime.now(UTC)
    for d in devices:
        d.emit(40, base)
    try:
        assert until(lambda: count(db) >= 120)
        assert until(lambda: all(d.outbox.count() == 0 for d in devices))
        rows = db.execute("SELECT event_id, device_id FROM events").fetchall()
        assert sorted(r[0] for r in rows) == sorted(i for d in devices for i in d.ids)
        # a redelivery (same payloads published again) changes nothing
        again = Device(tmp_path / "again", "v1", 0, broker.port, start=False)
        for eid in devices[0].ids[:10]:
            row = dict(devices[0].journal.db["events"].get(eid))
            again.outbox.hook(again.journal.db.conn, row)
        again.journal.db.conn.commit()
        again.sender.start()
        assert until(lambda: again.outbox.count() == 0)
        assert until(lambda: ing.ingested + ing.redelivered >= 130)
        assert count(db) == 120
        again.close()
    finally:
        for d in devices:
            d.close()
        ing.stop()


def test_broker_restart_mid_stream_loses_nothing(
    tmp_path: Path, broker: Mosquitto, db, pg_dsn
) -> None:
    ing = ingester(pg_dsn, broker.port)
    dev = Device(tmp_path, "v1", 0, broker.port)
    base = datetime.now(UTC)
    try:
        dev.emit(100, base)
        assert until(lambda: count(db) >= 30)
        broker.stop()  # the broker goes away mid-stream (SIGTERM: it saves its queue)
        dev.emit(200, base)  # the device keeps deciding and journaling meanwhile
        assert len(dev.ids) == 300
        broker.start()
        assert until(lambda: count(db) == 300, 60)
        assert until(lambda: dev.outbox.count() == 0)
        got = {r[0] for r in db.execute("SELECT event_id FROM events").fetchall()}
        assert got == set(dev.ids)
    finally:
        dev.close()
        ing.stop()


def test_long_offline_device_drains_in_order(tmp_path: Path, broker: Mosquitto, db, pg_dsn) -> None:
    dead = Mosquitto(tmp_path / "nowhere")  # a port where nothing listens: "offline"
    dev = Device(tmp_path, "v3", 0, dead.port)
    base = datetime.now(UTC) - timedelta(hours=6)
    dev.emit(200, base)
    assert dev.outbox.count() == 200 and dev.sender.sent == 0
    dev.sender.stop()
    ing = ingester(pg_dsn, broker.port)
    back = Sender(dev.outbox, BrokerSettings(port=broker.port), venue="v3", device_id=dev.id)
    back.start()
    try:
        assert until(lambda: count(db) == 200, 60)
        order = [
            r[0]
            for r in db.execute("SELECT event_id FROM events ORDER BY ingested_at, time").fetchall()
        ]
        assert order == dev.ids
    finally:
        back.stop()
        dev.outbox.close()
        dev.journal.close()
        ing.stop()


def test_full_outbox_alarms_and_gate_keeps_working(
    tmp_path: Path, signer: di.IssuerKey, trust: TrustList
) -> None:
    cfg = replace(Config(), data_dir=str(tmp_path))
    factory = MockFactory()
    now = datetime.now(UTC)
    text = di.issue(
        di.vaccination(on="2022-01-10"),
        signer,
        issued_at=now - timedelta(days=1),
        expires_at=now + timedelta(days=1),
    )
    with (
        Gate(replace(cfg.gate, pulse_s=0.01), pin_factory=factory) as gate,
        Journal(tmp_path / "j.db") as journal,
    ):
        outbox = Outbox(journal.path, "dev", max_rows=3)
        journal.hooks.append(outbox.hook)
        pipe = Pipeline(cfg, StaticTrust(trust), gate, journal)
        for i in range(6):
            o = pipe.present(Symbol("QRCODE", text, text.encode()), now)
            assert o.decision.admit, i
        assert gate.pulses >= 1  # the relay opened (a second admit while open extends)
        assert len(journal.events()) == 6  # every decision journaled
        assert outbox.count() == 3 and outbox.full and outbox.dropped == 3
        outbox.close()


def test_no_personal_field_leaves_the_device(
    tmp_path: Path, broker: Mosquitto, db, pg_dsn, signer: di.IssuerKey, trust: TrustList
) -> None:
    seen: list[bytes] = []
    sniff = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="sniffer")
    sniff.on_message = lambda _c, _u, m: seen.append(bytes(m.payload))
    sniff.connect("127.0.0.1", broker.port)
    sniff.subscribe("sentinel/#", qos=1)
    sniff.loop_start()
    ing = ingester(pg_dsn, broker.port)
    cfg = replace(Config(), data_dir=str(tmp_path))
    now = datetime.now(UTC)
    holder = di.person("Zyxwvutsson", "Quentinella", "1961-02-03")
    text = di.issue(
        di.vaccination(on="2022-01-10"),
        signer,
        issued_at=now - timedelta(days=1),
        expires_at=now + timedelta(days=1),
        holder=holder,
    )
    with Gate(cfg.gate, pin_factory=MockFactory()) as gate, Journal(tmp_path / "j.db") as journal:
        outbox = Outbox(journal.path, "dev-p", max_rows=100)
        journal.hooks.append(outbox.hook)
        sender = Sender(
            outbox, BrokerSettings(port=broker.port), venue=cfg.venue.id, device_id="dev-p"
        )
        sender.start()
        pipe = Pipeline(cfg, StaticTrust(trust), gate, journal, pseudonym_key=b"k" * 32)
        o = pipe.present(Symbol("QRCODE", text, text.encode()), now)
        assert o.decision.display_name.startswith("Z")
        assert until(lambda: count(db) == 1)
        assert until(lambda: len(seen) >= 1)
        sender.stop()
        outbox.close()
    sniff.loop_stop()
    sniff.disconnect()
    ing.stop()
    markers = [
        b"Zyxwvutsson",
        b"Quentinella",
        b"1961",
        b"Z********",
        o.decision.display_name.encode(),
        text[4:40].encode(),
    ]
    for payload in seen:
        import json

        doc = json.loads(payload)  # a v2 batch (the sender's default): only its two keys
        assert set(doc) == {"v", "events"} and doc["v"] == 2
        assert all(set(e) == set(EXPORT_FIELDS) for e in doc["events"])
        for m in markers:
            assert m not in payload
    dump = "\n".join(
        str(r)
        for table in ("events", "devices", "daily_counts")
        for r in db.execute(f"SELECT * FROM {table}").fetchall()
    )
    for m in markers:
        assert m.decode() not in dump


def test_manager_sees_only_their_venues(db) -> None:
    now = datetime.now(UTC)
    central.ensure_partitions(db, now.date())
    for i, venue in enumerate(["stadium", "stadium", "museum", "cinema"]):
        db.execute(
            "INSERT INTO events (event_id, device_id, venue, gate, time, decision, "
            "reason, credential_kind, bundle_version) VALUES "
            "(%s, 'd', %s, 'g', %s, 'refuse', 'EXPIRED', 'dcc-test', '1')",
            (f"e{i}", venue, now - timedelta(minutes=i + 1)),
        )
    db.execute(
        "INSERT INTO managers VALUES ('alice', 'stadium'), ('alice', 'cinema'), ('bob', 'museum')"
    )
    alice = central.refusals_by_reason(db, "alice", now - timedelta(days=1), now)
    assert alice == [("cinema", "EXPIRED", 1), ("stadium", "EXPIRED", 2)]
    assert central.refusals_by_reason(db, "bob", now - timedelta(days=1), now) == [
        ("museum", "EXPIRED", 1)
    ]
    assert central.refusals_by_reason(db, "mallory", now - timedelta(days=1), now) == []


def test_centre_purge_keeps_counts_and_audits(db) -> None:
    now = datetime(2026, 6, 15, tzinfo=UTC)
    for d in (now - timedelta(days=70), now - timedelta(days=20), now - timedelta(days=1)):
        central.ensure_partitions(db, d.date(), months=0)
    rows = [(f"old{i}", now - timedelta(days=70, minutes=i)) for i in range(5)]
    rows += [(f"mid{i}", now - timedelta(days=20)) for i in range(3)]
    rows += [(f"new{i}", now - timedelta(days=1)) for i in range(2)]
    for eid, t in rows:
        db.execute(
            "INSERT INTO events (event_id, device_id, venue, gate, time, decision, "
            "reason, credential_kind, bundle_version) VALUES "
            "(%s, 'd', 'v', 'g', %s, 'refuse', 'EXPIRED', 'dcc-test', '1')",
            (eid, t),
        )
    assert central.purge(db, now, retention_days=14) == 8
    assert count(db) == 2
    total = db.execute("SELECT sum(n) FROM daily_counts").fetchone()[0]
    assert total == 8
    assert central.purge(db, now, retention_days=14) == 0  # idempotent
    audit = db.execute(
        "SELECT kind, details->>'rows', prev_hash, hash FROM central_audit ORDER BY seq"
    ).fetchall()
    assert [(a[0], a[1]) for a in audit] == [("purge", "8"), ("purge", "0")]
    assert audit[1][2] == audit[0][3]  # chained
    parts = {
        r[0]
        for r in db.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        ).fetchall()
    }
    old = f"events_{(now - timedelta(days=70)):%Y_%m}"
    assert old not in parts  # a whole month outside the window is dropped


def test_old_single_event_and_new_batched_devices_are_both_ingested(
    tmp_path: Path, broker: Mosquitto, db, pg_dsn
) -> None:
    """An old device (v1: one event per message) and a new one (v2 batches) on one centre."""
    seen: dict[str, list[bytes]] = {"old": [], "new": []}
    sniff = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="sniff-v")
    sniff.on_message = lambda _c, _u, m: seen["old" if "old" in m.topic else "new"].append(
        m.payload
    )
    sniff.connect("127.0.0.1", broker.port)
    sniff.subscribe("sentinel/+/+/events", qos=1)
    sniff.loop_start()
    ing = ingester(pg_dsn, broker.port)
    old = Device(tmp_path, "old", 0, broker.port, start=False, batch=1)
    new = Device(tmp_path, "new", 0, broker.port, start=False, batch=25)
    base = datetime.now(UTC)
    try:
        for d in (old, new):
            d.emit(60, base)  # queued first, so the new device drains them in batches
            d.sender.start()
        assert until(lambda: count(db) >= 120)
        assert until(lambda: old.outbox.count() == 0 and new.outbox.count() == 0)
        rows = db.execute("SELECT event_id FROM events").fetchall()
        assert sorted(r[0] for r in rows) == sorted(old.ids + new.ids)
        assert until(lambda: len(seen["old"]) == 60 and sum(map(len, seen.values())) > 60)
        import json

        assert all(set(json.loads(p)) == set(EXPORT_FIELDS) for p in seen["old"])
        sizes = [len(json.loads(p)["events"]) for p in seen["new"]]
        assert sum(sizes) == 60 and max(sizes) == 25  # 60 events in a few messages
        assert ing.rejected == 0
    finally:
        sniff.loop_stop()
        sniff.disconnect()
        old.close()
        new.close()
        ing.stop()


def test_bad_payloads_are_rejected_not_fatal() -> None:
    from sentinel.errors import FleetError

    for bad in (
        b"",
        b"[]",
        b"{}",
        b'{"event_id": 1}',
        b"\xff" * 10,
        b'{"event_id":"a","device_id":"d","venue":"v","gate":"g","time":"2026-01-01",'
        b'"decision":"x","reason":"r","credential_kind":"k","bundle_version":"1"}',
    ):
        with pytest.raises(FleetError):
            central.parse_event(bad)

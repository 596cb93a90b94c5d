"""Security review D3, reproduced as the review did: real mosquitto, real ingester, real PG.

Attacks 44-46: a device (south-hall-g1) publishes events and heartbeats that claim another
venue and device, a far-future time and a made-up reason.  Fixed by per-device broker
credentials with an ACL (a device may publish only on its own topic) and an ingester that
takes venue and device from the topic and refuses payloads that disagree.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest

from sentinel.errors import FleetError
from sentinel.fleet import central
from sentinel.fleet.brokerauth import acl_text, write_broker_auth
from sentinel.fleet.mqtt import BrokerSettings
from sentinel.fleet.wire import batch_payload
from tests.servers import Mosquitto, postgres
from tests.test_fleet import until

SOUTH, NORTH = ("south-hall", "south-hall-g1"), ("north-arena", "north-arena-g1")
INGESTER = "central-sec"


@pytest.fixture(scope="module")
def pg_dsn() -> Iterator[str]:
    with postgres() as dsn:
        yield dsn


@pytest.fixture
def site(
    tmp_path: Path, pg_dsn: str
) -> Iterator[tuple[Mosquitto, dict[str, str], central.Ingester]]:
    passwords = write_broker_auth(tmp_path / "auth", [SOUTH, NORTH], [INGESTER])
    broker = Mosquitto(tmp_path / "mqtt", auth_dir=tmp_path / "auth")
    broker.start()
    conn = psycopg.connect(pg_dsn, autocommit=True)
    central.migrate(conn)
    conn.execute("TRUNCATE events, devices, rollup_hourly, rollup_daily, rollup_delta, alerts")
    conn.close()
    pw_file = tmp_path / "ingester.pw"
    pw_file.write_text(passwords[INGESTER])
    ing = central.Ingester(
        pg_dsn,
        BrokerSettings(port=broker.port, username=INGESTER, password_file=str(pw_file)),
        client_id=INGESTER,
    )
    ing.start()
    assert ing.conn.subscribed.wait(20)
    yield broker, passwords, ing
    ing.stop()
    broker.stop()


class Client:
    """An MQTT 5 client that records connect and PUBACK reason codes."""

    def __init__(self, port: int, user: str | None, password: str | None) -> None:
        self.c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=user or "anon", protocol=mqtt.MQTTv5
        )
        if user:
            self.c.username_pw_set(user, password)
        self.connack: list[mqtt.ReasonCode] = []
        self.acks: dict[int, mqtt.ReasonCode] = {}
        self.done = threading.Event()
        self.c.on_connect = lambda _c, _u, _f, rc, _p: (self.connack.append(rc), self.done.set())
        self.c.on_publish = lambda _c, _u, mid, rc, _p: self.acks.__setitem__(mid, rc)
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        assert self.done.wait(10)

    def publish(self, topic: str, doc: dict | bytes) -> mqtt.ReasonCode:
        payload = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        info = self.c.publish(topic, payload, qos=1)
        assert until(lambda: info.mid in self.acks, 10)
        return self.acks[info.mid]

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def event(venue: str, device: str, **over: str) -> dict:
    doc = {
        "event_id": str(uuid.uuid4()),
        "device_id": device,
        "venue": venue,
        "gate": "n1",
        "time": datetime.now(UTC).isoformat(),
        "decision": "refuse",
        "reason": "REVOKED",
        "credential_kind": "dcc-vaccination",
        "bundle_version": "7",
    }
    return {**doc, **over}


def rows(pg_dsn: str, sql: str) -> list[tuple]:
    with psycopg.connect(pg_dsn) as conn:
        return conn.execute(sql).fetchall()


def test_cross_venue_event_injection_is_refused(site, pg_dsn: str) -> None:
    """Attack 44: on south-hall-g1's own topic, a payload claiming north-arena."""
    broker, pw, ing = site
    dev = Client(broker.port, SOUTH[1], pw[SOUTH[1]])
    topic = f"sentinel/{SOUTH[0]}/{SOUTH[1]}/events"
    try:
        forged = event(*NORTH)
        assert not dev.publish(topic, forged).is_failure  # the broker accepts its own topic
        also = event(SOUTH[0], NORTH[1])  # right venue, another device
        dev.publish(topic, also)
        genuine = event(*SOUTH, reason="EXPIRED")
        dev.publish(topic, genuine)
        assert until(lambda: rows(pg_dsn, "SELECT count(*) FROM events")[0][0] >= 1)
        stored = rows(pg_dsn, "SELECT event_id, venue, device_id FROM events")
        assert stored == [(genuine["event_id"], *SOUTH)]
        assert until(lambda: ing.rejected == 2)  # counted just after the commit
    finally:
        dev.close()


def test_cross_venue_event_inside_a_batch_is_refused_alone(site, pg_dsn: str) -> None:
    """Attack 44 in the v2 format: a forged event among genuine ones in one message."""
    broker, pw, ing = site
    dev = Client(broker.port, SOUTH[1], pw[SOUTH[1]])
    topic = f"sentinel/{SOUTH[0]}/{SOUTH[1]}/events"
    try:
        docs = [event(*SOUTH, reason="EXPIRED"), event(*NORTH), event(*SOUTH, reason="ADMIT")]
        docs[2]["decision"] = "admit"
        payload = batch_payload([json.dumps(d).encode() for d in docs])
        assert not dev.publish(topic, payload).is_failure
        assert until(lambda: rows(pg_dsn, "SELECT count(*) FROM events")[0][0] >= 2)
        stored = rows(pg_dsn, "SELECT event_id, venue, device_id FROM events ORDER BY 1")
        assert stored == sorted((d["event_id"], *SOUTH) for d in (docs[0], docs[2]))
        assert until(lambda: ing.rejected == 1)
    finally:
        dev.close()


def test_heartbeat_hijack_and_far_future_pin_are_refused(site, pg_dsn: str) -> None:
    """Attack 45: move north-arena-g1 to south-hall and pin it ten years ahead."""
    broker, pw, ing = site
    south = Client(broker.port, SOUTH[1], pw[SOUTH[1]])
    north = Client(broker.port, NORTH[1], pw[NORTH[1]])
    now = datetime.now(UTC)
    try:
        south.publish(
            f"sentinel/{SOUTH[0]}/{SOUTH[1]}/heartbeat",
            {
                "device_id": NORTH[1],
                "venue": SOUTH[0],
                "gate": "n1",
                "time": (now + timedelta(days=3650)).isoformat(),
                "bundle_age_s": 1,
            },
        )
        # its own heartbeat, but ten years ahead: refused too (else it pins the row)
        south.publish(
            f"sentinel/{SOUTH[0]}/{SOUTH[1]}/heartbeat",
            {"gate": "s1", "time": (now + timedelta(days=3650)).isoformat()},
        )
        north.publish(
            f"sentinel/{NORTH[0]}/{NORTH[1]}/heartbeat",
            {"device_id": NORTH[1], "venue": NORTH[0], "gate": "n1", "time": now.isoformat()},
        )
        assert until(lambda: rows(pg_dsn, "SELECT count(*) FROM devices")[0][0] >= 1)
        assert until(lambda: ing.rejected == 2)
        got = rows(pg_dsn, "SELECT device_id, venue, last_heartbeat FROM devices")
        assert [(d, v) for d, v, _t in got] == [NORTH[::-1]]
        assert got[0][2] <= now + timedelta(seconds=1)
    finally:
        south.close()
        north.close()


def test_unknown_reason_decision_kind_and_times_are_refused(site, pg_dsn: str) -> None:
    """Attack 46 (and its relatives): values outside the known sets or the time window."""
    broker, pw, ing = site
    dev = Client(broker.port, SOUTH[1], pw[SOUTH[1]])
    topic = f"sentinel/{SOUTH[0]}/{SOUTH[1]}/events"
    now = datetime.now(UTC)
    bad = [
        {"reason": "<img src=x onerror=alert(2)>"},
        {"decision": "maybe"},
        {"credential_kind": "passport-of-mars"},
        {"time": (now + timedelta(hours=1)).isoformat()},
        {"time": (now - timedelta(days=4000)).isoformat()},
        {"time": now.replace(tzinfo=None).isoformat()},
    ]
    try:
        for over in bad:
            dev.publish(topic, event(*SOUTH, **over))
        ok = event(*SOUTH, reason="EXPIRED", time=(now - timedelta(days=3)).isoformat())
        dev.publish(topic, ok)
        assert until(lambda: rows(pg_dsn, "SELECT count(*) FROM events")[0][0] >= 1)
        assert until(lambda: ing.rejected == len(bad))
        assert rows(pg_dsn, "SELECT event_id, reason FROM events") == [(ok["event_id"], "EXPIRED")]
    finally:
        dev.close()


def test_broker_acl_keeps_each_device_on_its_own_topic(site, pg_dsn: str) -> None:
    """The broker believes only an authenticated device, and only on its own topic."""
    broker, pw, ing = site
    south = Client(broker.port, SOUTH[1], pw[SOUTH[1]])
    try:
        # publishing on north-arena's topic itself: not authorized (MQTT 5 PUBACK 0x87)
        rc = south.publish(f"sentinel/{NORTH[0]}/{NORTH[1]}/events", event(*NORTH))
        assert rc.is_failure and rc.value == 0x87
        rc = south.publish(f"sentinel/{NORTH[0]}/{SOUTH[1]}/events", event(NORTH[0], SOUTH[1]))
        assert rc.is_failure
        genuine = event(*SOUTH, reason="EXPIRED")
        assert not south.publish(f"sentinel/{SOUTH[0]}/{SOUTH[1]}/events", genuine).is_failure
        assert until(lambda: rows(pg_dsn, "SELECT count(*) FROM events")[0][0] >= 1)
        assert rows(pg_dsn, "SELECT event_id FROM events") == [(genuine["event_id"],)]
    finally:
        south.close()
    # no password, a wrong password, another device's password: refused at CONNECT
    for user, password in ((None, None), (SOUTH[1], "guess"), (SOUTH[1], pw[NORTH[1]])):
        c = Client(broker.port, user, password)
        assert c.connack[0].is_failure, (user, password)
        c.close()


def test_acl_refuses_ids_that_would_widen_it() -> None:
    for venue, device in (("v/+", "d"), ("v", "#"), ("v", "d\nuser x"), ("v", "")):
        with pytest.raises(FleetError):
            acl_text([(venue, device)], [])
    assert "topic write sentinel/v1/d1/events" in acl_text([("v1", "d1")], [])

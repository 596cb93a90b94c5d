"""The device → centre event formats: v1 (one event per message) and v2 (batches)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from sentinel.errors import FleetError
from sentinel.fleet import loadgen
from sentinel.fleet.wire import (
    MAX_BATCH_EVENTS,
    batch_payload,
    parse_event,
    parse_events,
    parse_heartbeat,
    parse_topic,
)

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
TOPIC = parse_topic("sentinel/v1/v1-d/events")


def ev(k: int, **change: str) -> bytes:
    doc = json.loads(loadgen.event_payload("w", 0, k, "v1", "v1-d", NOW, "EXPIRED"))
    doc.update(change)
    return json.dumps(doc).encode()


def test_v1_message_is_one_row_as_before() -> None:
    rows, bad = parse_events(ev(0), TOPIC, NOW)
    assert rows == [parse_event(ev(0), TOPIC, NOW)] and bad == []
    assert rows[0][0] == "w-0-0" and rows[0][4] == NOW


def test_v1_event_whose_value_says_events_is_still_v1() -> None:
    rows, bad = parse_events(ev(0, gate="events"), TOPIC, NOW)
    assert [r[3] for r in rows] == ["events"] and bad == []


def test_v2_batch_rows_in_order() -> None:
    rows, bad = parse_events(batch_payload([ev(k) for k in range(5)]), TOPIC, NOW)
    assert [r[0] for r in rows] == [f"w-0-{k}" for k in range(5)] and bad == []


def test_v2_bad_event_is_refused_alone() -> None:
    payloads = [
        ev(0),
        ev(1, venue="other"),  # names another venue than the topic
        ev(2, reason="NOT_A_REASON"),
        ev(3, time=(NOW + timedelta(hours=1)).isoformat()),  # ahead of the centre's clock
        b'{"event_id": 1}',
        ev(5),
    ]
    rows, bad = parse_events(batch_payload(payloads), TOPIC, NOW)
    assert [r[0] for r in rows] == ["w-0-0", "w-0-5"]
    assert len(bad) == 4
    assert any("topic" in b for b in bad) and any("reason" in b for b in bad)


@pytest.mark.parametrize(
    "payload",
    [
        b'{"v":3,"events":[' + ev(0) + b"]}",  # a version this centre does not know
        b'{"v":2,"events":[]}',
        b'{"v":2,"events":[' + ev(0) + b'],"extra":1}',
        b'{"v":2,"events":' + ev(0) + b"}",
        b'{"v":"2","events":[' + ev(0) + b"]}",
        b'{"v":2,"events":[' + b",".join([ev(0)] * (MAX_BATCH_EVENTS + 1)) + b"]}",
        b'{"v":2,"events":[' * 5000,
        b'{"events"' + b"\xff" * 100,
    ],
)
def test_bad_envelopes_are_refused_whole(payload: bytes) -> None:
    with pytest.raises(FleetError):
        parse_events(payload, TOPIC, NOW)


def test_batch_payload_bounds() -> None:
    with pytest.raises(ValueError):
        batch_payload([])
    with pytest.raises(ValueError):
        batch_payload([ev(0)] * (MAX_BATCH_EVENTS + 1))


def test_nul_characters_are_refused_before_postgresql_sees_them() -> None:
    """PostgreSQL text cannot hold U+0000: a COPY with one fails the whole batch."""
    rows, bad = parse_events(batch_payload([ev(0, gate="g\u0000"), ev(1)]), TOPIC, NOW)
    assert [r[0] for r in rows] == ["w-0-1"] and bad and "NUL" in bad[0]
    with pytest.raises(FleetError):
        parse_event(ev(0, bundle_version="\u0000"), TOPIC, NOW)
    with pytest.raises(FleetError):
        parse_topic("sentinel/v1/v1\x00d/events")
    hb = {"time": NOW.isoformat(), "faults": "x\u0000y"}
    with pytest.raises(FleetError):
        parse_heartbeat(json.dumps(hb).encode(), parse_topic("sentinel/v1/v1-d/heartbeat"), NOW)


@pytest.mark.parametrize("backlog", [2**31, -1, 1e12])
def test_heartbeat_backlog_outside_the_integer_column_is_refused(backlog: float) -> None:
    hb = {"time": NOW.isoformat(), "outbox_backlog": backlog}
    with pytest.raises(FleetError):
        parse_heartbeat(json.dumps(hb).encode(), parse_topic("sentinel/v1/v1-d/heartbeat"), NOW)

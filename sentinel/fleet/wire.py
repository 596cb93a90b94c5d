"""The device → centre message formats, and their validation at the centre.

Two event formats arrive on ``sentinel/<venue>/<device>/events``:

* **v1** (every device before batching, and ``fleet.batch_events = 1``): one event per
  MQTT message, a JSON object with exactly ``EXPORT_FIELDS``, all strings.
* **v2** (batched): ``{"v": 2, "events": [<v1 object>, ...]}``, 1 to ``MAX_BATCH_EVENTS``
  events of the topic's device, as a device drains its outbox (one PUBACK covers them
  all).  Each event is validated as a v1 message is; a bad event is refused alone.

Decoding uses msgspec (typed, in C: exact field set, strings only, lengths) and then
checks the sets and the time window in Python.  The topic is the identity (security
review D3): venue and device come from the topic, a payload naming another is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import msgspec

from sentinel.credentials.model import CredentialKind
from sentinel.errors import FleetError
from sentinel.fleet.outbox import EXPORT_FIELDS
from sentinel.reasons import ReasonCode

DECISIONS = frozenset({"admit", "refuse", "event", "override", "exit"})
REASONS = frozenset(r.value for r in ReasonCode)
CREDENTIAL_KINDS = frozenset({k.value for k in CredentialKind} | {""})
MAX_FUTURE = timedelta(minutes=5)  # device clocks are NTP-synced; beyond this: refused
MAX_AGE = timedelta(days=400)  # older than any outbox backlog or retention window
MAX_FIELD = 200
MAX_BATCH_EVENTS = 1000  # events in one v2 message (a device sends at most its window)
MAX_PAYLOAD = 1 << 20  # bytes of one message; mosquitto's message_size_limit may be lower

_Str = Annotated[str, msgspec.Meta(max_length=MAX_FIELD)]


class _Event(msgspec.Struct, forbid_unknown_fields=True):
    event_id: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_FIELD)]
    device_id: _Str
    venue: _Str
    gate: _Str
    time: _Str
    decision: _Str
    reason: _Str
    credential_kind: _Str
    bundle_version: _Str


class _Batch(msgspec.Struct, forbid_unknown_fields=True):
    v: int
    events: Annotated[list[msgspec.Raw], msgspec.Meta(min_length=1, max_length=MAX_BATCH_EVENTS)]


class _BatchFast(msgspec.Struct, forbid_unknown_fields=True):
    v: int
    events: Annotated[list[_Event], msgspec.Meta(min_length=1, max_length=MAX_BATCH_EVENTS)]


_DEC_EVENT = msgspec.json.Decoder(_Event)
_DEC_BATCH = msgspec.json.Decoder(_Batch)
_DEC_FAST = msgspec.json.Decoder(_BatchFast)


@dataclass(frozen=True, slots=True)
class Topic:
    venue: str
    device_id: str
    kind: str  # "events" or "heartbeat"


def parse_topic(topic: str) -> Topic:
    """``sentinel/<venue>/<device>/(events|heartbeat)``; FleetError otherwise."""
    parts = topic.split("/")
    if (
        len(parts) != 4
        or parts[0] != "sentinel"
        or parts[3] not in ("events", "heartbeat")
        or not all(0 < len(p) <= MAX_FIELD and "\x00" not in p for p in parts[1:3])
    ):
        raise FleetError(f"unexpected topic {topic[:80]!r}")
    return Topic(parts[1], parts[2], parts[3])


def batch_payload(payloads: list[bytes]) -> bytes:
    """A v2 message from v1 event payloads (the outbox's stored JSON objects)."""
    if not 0 < len(payloads) <= MAX_BATCH_EVENTS:
        raise ValueError(f"a batch holds 1 to {MAX_BATCH_EVENTS} events, not {len(payloads)}")
    return b'{"v":2,"events":[' + b",".join(payloads) + b"]}"


def _time_in_window(t: datetime, now: datetime) -> datetime:
    if t.tzinfo is None:
        raise ValueError("time without zone")
    if t > now + MAX_FUTURE:
        raise ValueError(f"time {t.isoformat()} is ahead of the centre's clock")
    if t < now - MAX_AGE:
        raise ValueError(f"time {t.isoformat()} is older than {MAX_AGE.days} days")
    return t


def _row(e: _Event, topic: Topic | None, now: datetime) -> tuple[Any, ...]:
    if "\x00" in "".join((e.event_id, e.device_id, e.venue, e.gate, e.time, e.bundle_version)):
        raise ValueError("NUL character in a field")  # PostgreSQL text cannot hold it
    if topic is not None and (e.venue != topic.venue or e.device_id != topic.device_id):
        raise ValueError("venue/device in the payload disagree with the topic")
    if e.decision not in DECISIONS:
        raise ValueError("unknown decision")
    if e.reason not in REASONS:
        raise ValueError("unknown reason code")
    if e.credential_kind not in CREDENTIAL_KINDS:
        raise ValueError("unknown credential kind")
    t = _time_in_window(datetime.fromisoformat(e.time), now)
    return (
        e.event_id,
        e.device_id,
        e.venue,
        e.gate,
        t,
        e.decision,
        e.reason,
        e.credential_kind,
        e.bundle_version,
    )


def parse_event(
    payload: bytes, topic: Topic | None = None, now: datetime | None = None
) -> tuple[Any, ...]:
    """Validate a v1 event payload; the row in ``EXPORT_FIELDS`` order (FleetError if bad).

    With ``topic``, the payload's venue and device must be the topic's (the broker ACL
    authenticated the topic, not the payload).
    """
    try:
        return _row(_DEC_EVENT.decode(payload), topic, now or datetime.now(UTC))
    except (msgspec.MsgspecError, ValueError, TypeError, RecursionError) as exc:
        raise FleetError(f"bad event payload: {exc}") from None


def parse_events(
    payload: bytes, topic: Topic | None = None, now: datetime | None = None
) -> tuple[list[tuple[Any, ...]], list[str]]:
    """Rows of a v1 or v2 message and the reasons for each event refused.

    A message that is not an event or a batch at all raises FleetError; in a v2 batch a
    bad event is refused alone (its reason returned) and the others are kept.
    """
    now = now or datetime.now(UTC)
    if len(payload) > MAX_PAYLOAD:
        raise FleetError(f"bad event payload: {len(payload)} bytes")
    if b'"events"' not in payload:  # no v1 event has that key
        return [parse_event(payload, topic, now)], []
    try:
        fast = _DEC_FAST.decode(payload)
        if fast.v == 2:
            return [_row(e, topic, now) for e in fast.events], []
    except (msgspec.MsgspecError, ValueError, TypeError, RecursionError):
        pass  # some event is bad (or the envelope is): find out which, one by one
    try:
        raw = _DEC_BATCH.decode(payload)
    except (msgspec.MsgspecError, RecursionError):
        return [parse_event(payload, topic, now)], []  # "events" was a value: v1, or bad
    if raw.v != 2:
        raise FleetError(f"bad event batch: unknown format version {raw.v}")
    rows: list[tuple[Any, ...]] = []
    bad: list[str] = []
    for r in raw.events:
        try:
            rows.append(parse_event(bytes(r), topic, now))
        except FleetError as exc:
            bad.append(str(exc))
    return rows, bad


HEARTBEAT_COLUMNS = (
    "device_id",
    "venue",
    "gate",
    "last_heartbeat",
    "bundle_version",
    "bundle_age_s",
    "camera",
    "gate_state",
    "disk_free_bytes",
    "software",
    "outbox_backlog",
    "faults",
)


def _num(v: Any) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or v != v or abs(v) > 1e18:
        raise ValueError("not a finite number")
    return float(v)


def _backlog(v: Any) -> int:
    n = int(_num(v) or 0)
    if not 0 <= n < 2**31:  # the column is a PostgreSQL integer
        raise ValueError("outbox backlog out of range")
    return n


def parse_heartbeat(payload: bytes, topic: Topic, now: datetime | None = None) -> tuple[Any, ...]:
    """A ``devices`` row from a heartbeat on ``topic`` (the topic names the device)."""
    now = now or datetime.now(UTC)
    try:
        hb = msgspec.json.decode(payload)
        if not isinstance(hb, dict):
            raise ValueError("not an object")
        if str(hb.get("device_id", topic.device_id)) != topic.device_id:
            raise ValueError("device in the payload disagrees with the topic")
        if str(hb.get("venue", topic.venue)) != topic.venue:
            raise ValueError("venue in the payload disagrees with the topic")
        row = (
            topic.device_id,
            topic.venue,
            str(hb.get("gate", ""))[:MAX_FIELD],
            _time_in_window(datetime.fromisoformat(str(hb["time"])), now),
            str(hb.get("bundle_version", ""))[:MAX_FIELD],
            _num(hb.get("bundle_age_s")),
            str(hb.get("camera", ""))[:50],
            str(hb.get("gate_state", ""))[:50],
            _num(hb.get("disk_free_bytes")),
            str(hb.get("software", ""))[:50],
            _backlog(hb.get("outbox_backlog")),
            str(hb.get("faults", ""))[:500],
        )
        if any(isinstance(v, str) and "\x00" in v for v in row):
            raise ValueError("NUL character in a field")  # PostgreSQL text cannot hold it
        return row
    except (
        KeyError,
        ValueError,
        TypeError,
        OverflowError,
        RecursionError,
        msgspec.MsgspecError,
    ) as exc:
        raise FleetError(f"bad heartbeat: {exc}") from None


__all__ = [
    "CREDENTIAL_KINDS",
    "DECISIONS",
    "EXPORT_FIELDS",
    "HEARTBEAT_COLUMNS",
    "MAX_BATCH_EVENTS",
    "REASONS",
    "Topic",
    "batch_payload",
    "parse_event",
    "parse_events",
    "parse_heartbeat",
    "parse_topic",
]

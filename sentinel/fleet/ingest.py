"""The central ingester: MQTT 5 shared subscription → batches → PostgreSQL, ack after commit.

* N ingester processes subscribe to ``$share/<group>/sentinel/+/+/events`` (and heartbeats);
  the broker hands each message to one member of the group (MQTT 5.0 §4.8.2).
* paho runs with ``manual_ack``: a message is acknowledged (PUBACK) only after the
  transaction holding it has committed.  Each ingester has a fixed client id and a
  persistent MQTT 5 session (clean start off, session expiry > 0), so when one is killed
  the broker keeps its unacknowledged messages and redelivers them when it comes back:
  nothing is lost.  A message committed but not yet acknowledged when the process died is
  redelivered and skipped by ``ON CONFLICT DO NOTHING`` on ``(event_id, time)``, and only
  rows the INSERT actually returned feed the roll-ups and alerts: nothing is duplicated.
* One statement per batch: multi-row INSERT from ``unnest`` arrays, then (in the same
  statement, data-modifying CTEs) the hourly roll-up for every level of each new row's
  path (per hour and per day), and an alert for each new refusal of an authority-marked
  kind.
* The topic is the identity (security review D3): the broker's ACL lets a device publish
  only on ``sentinel/<its venue>/<its id>/...``; the ingester takes venue and device from
  the topic and refuses a payload that names another, a reason, decision or credential
  kind outside the known sets, and a time outside [now - 400 days, now + 5 minutes].
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg

from sentinel.credentials.model import CredentialKind
from sentinel.errors import FleetError
from sentinel.fleet.mqtt import BrokerSettings, Connection
from sentinel.fleet.outbox import EXPORT_FIELDS
from sentinel.fleet.schema import _audit, ensure_partitions, migrate
from sentinel.reasons import ReasonCode

log = logging.getLogger(__name__)

DECISIONS = frozenset({"admit", "refuse", "event", "override", "exit"})
REASONS = frozenset(r.value for r in ReasonCode)
CREDENTIAL_KINDS = frozenset({k.value for k in CredentialKind} | {""})
MAX_FUTURE = timedelta(minutes=5)  # device clocks are NTP-synced; beyond this: refused
MAX_AGE = timedelta(days=400)  # older than any outbox backlog or retention window
MAX_FIELD = 200


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
        or not all(0 < len(p) <= MAX_FIELD for p in parts[1:3])
    ):
        raise FleetError(f"unexpected topic {topic[:80]!r}")
    return Topic(parts[1], parts[2], parts[3])


def _time_in_window(t: datetime, now: datetime) -> datetime:
    if t.tzinfo is None:
        raise ValueError("time without zone")
    if t > now + MAX_FUTURE:
        raise ValueError(f"time {t.isoformat()} is ahead of the centre's clock")
    if t < now - MAX_AGE:
        raise ValueError(f"time {t.isoformat()} is older than {MAX_AGE.days} days")
    return t


def parse_event(
    payload: bytes, topic: Topic | None = None, now: datetime | None = None
) -> tuple[Any, ...]:
    """Validate an event payload; return the row in ``EXPORT_FIELDS`` order (FleetError if bad).

    With ``topic``, the payload's venue and device must be the topic's (the broker ACL
    authenticated the topic, not the payload).
    """
    now = now or datetime.now(UTC)
    try:
        doc = json.loads(payload)
        if not isinstance(doc, dict) or set(doc) != set(EXPORT_FIELDS):
            raise ValueError(f"fields {sorted(doc) if isinstance(doc, dict) else type(doc)}")
        values = [doc[k] for k in EXPORT_FIELDS]
        if not all(isinstance(v, str) and len(v) <= MAX_FIELD for v in values):
            raise ValueError("field not a short string")
        if not doc["event_id"]:
            raise ValueError("empty event id")
        if topic is not None and (doc["venue"], doc["device_id"]) != (
            topic.venue,
            topic.device_id,
        ):
            raise ValueError("venue/device in the payload disagree with the topic")
        if doc["decision"] not in DECISIONS:
            raise ValueError("unknown decision")
        if doc["reason"] not in REASONS:
            raise ValueError("unknown reason code")
        if doc["credential_kind"] not in CREDENTIAL_KINDS:
            raise ValueError("unknown credential kind")
        t = _time_in_window(datetime.fromisoformat(doc["time"]), now)
    except (ValueError, TypeError, RecursionError) as exc:
        raise FleetError(f"bad event payload: {exc}") from None
    row = dict(zip(EXPORT_FIELDS, values, strict=True))
    row["time"] = t  # type: ignore[assignment]
    return tuple(row[k] for k in EXPORT_FIELDS)


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


def parse_heartbeat(payload: bytes, topic: Topic, now: datetime | None = None) -> tuple[Any, ...]:
    """A ``devices`` row from a heartbeat on ``topic`` (the topic names the device)."""
    now = now or datetime.now(UTC)
    try:
        hb = json.loads(payload)
        if not isinstance(hb, dict):
            raise ValueError("not an object")
        if str(hb.get("device_id", topic.device_id)) != topic.device_id:
            raise ValueError("device in the payload disagrees with the topic")
        if str(hb.get("venue", topic.venue)) != topic.venue:
            raise ValueError("venue in the payload disagrees with the topic")
        return (
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
            int(_num(hb.get("outbox_backlog")) or 0),
            str(hb.get("faults", ""))[:500],
        )
    except (KeyError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise FleetError(f"bad heartbeat: {exc}") from None


# One statement per batch.  Only rows the INSERT returned (new ones) reach the roll-ups and
# the alerts, so a redelivered event changes nothing.  Roll-up keys are inserted in key
# order, so two ingesters lock shared roll-up rows in the same order (no deadlock).
_BATCH = """
WITH ins AS (
    INSERT INTO events (event_id, device_id, venue, gate, time, decision, reason,
                        credential_kind, bundle_version)
    SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::timestamptz[],
                         %s::text[], %s::text[], %s::text[], %s::text[])
    ON CONFLICT DO NOTHING
    RETURNING event_id, venue, gate, time, decision, reason
), placed AS (
    SELECT ins.*, p.path FROM ins LEFT JOIN venue_places p ON p.venue = ins.venue
), roll AS (
    INSERT INTO rollup_hourly AS r (level, area, hour, decision, reason, n)
    SELECT l, CASE WHEN l = 5 THEN venue ELSE path[l + 1] END,
           date_trunc('hour', time, 'UTC'), decision, reason, count(*)
    FROM placed CROSS JOIN generate_series(0, 5) AS l
    WHERE l = 5 OR path IS NOT NULL
    GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (level, area, hour, decision, reason) DO UPDATE SET n = r.n + EXCLUDED.n
), rolld AS (
    INSERT INTO rollup_daily AS r (level, area, day, decision, reason, n)
    SELECT l, CASE WHEN l = 5 THEN venue ELSE path[l + 1] END,
           (time AT TIME ZONE 'UTC')::date, decision, reason, count(*)
    FROM placed CROSS JOIN generate_series(0, 5) AS l
    WHERE l = 5 OR path IS NOT NULL
    GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (level, area, day, decision, reason) DO UPDATE SET n = r.n + EXCLUDED.n
), al AS (
    INSERT INTO alerts (event_id, venue, gate, time, reason, street)
    SELECT event_id, venue, gate, time, reason, coalesce(path[3], '') FROM placed
    WHERE decision = 'refuse' AND reason IN (SELECT reason FROM alert_kinds)
    ON CONFLICT (event_id) DO NOTHING
    RETURNING id
)
SELECT (SELECT count(*) FROM ins), (SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM al)
"""

_HEARTBEATS = f"""
INSERT INTO devices ({", ".join(HEARTBEAT_COLUMNS)})
SELECT DISTINCT ON (device_id) * FROM unnest(
    %s::text[], %s::text[], %s::text[], %s::timestamptz[], %s::text[], %s::float8[],
    %s::text[], %s::text[], %s::float8[], %s::text[], %s::int[], %s::text[])
    AS h({", ".join(HEARTBEAT_COLUMNS)})
ORDER BY device_id, last_heartbeat DESC
ON CONFLICT (device_id) DO UPDATE SET venue = EXCLUDED.venue,
    gate = EXCLUDED.gate, last_heartbeat = EXCLUDED.last_heartbeat,
    bundle_version = EXCLUDED.bundle_version, bundle_age_s = EXCLUDED.bundle_age_s,
    camera = EXCLUDED.camera, gate_state = EXCLUDED.gate_state,
    disk_free_bytes = EXCLUDED.disk_free_bytes, software = EXCLUDED.software,
    outbox_backlog = EXCLUDED.outbox_backlog, faults = EXCLUDED.faults
WHERE devices.last_heartbeat <= EXCLUDED.last_heartbeat
"""


@dataclass(slots=True)
class Batch:
    events: list[tuple[Any, ...]] = field(default_factory=list)
    heartbeats: list[tuple[Any, ...]] = field(default_factory=list)
    acks: list[tuple[int, int, int]] = field(default_factory=list)  # (mid, qos, generation)
    rejected: int = 0


def _columns(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    return [[r[i] for r in rows] for i in range(width)]


class Ingester:
    """One member of the ingester group: subscribe, batch, commit, then acknowledge."""

    def __init__(
        self,
        dsn: str,
        broker: BrokerSettings,
        *,
        client_id: str = "sentinel-central",
        group: str | None = "central",
        batch_max: int = 1000,
        batch_wait_s: float = 0.05,
        receive_maximum: int = 2000,
        session_expiry_s: int = 7 * 24 * 3600,
    ) -> None:
        self.dsn = dsn
        self.db = self._connect()
        migrate(self.db)
        self.batch_max = batch_max
        self.batch_wait_s = batch_wait_s
        self._partitions_ready: set[tuple[int, int]] = set()
        self._inbox: deque[tuple[str, bytes, int, int, int]] = deque()
        # connection generation: a packet id is only acknowledged on the connection that
        # delivered it (after a reconnect the broker resends, and may reuse ids)
        self._gen = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ingested = 0  # new rows written
        self.redelivered = 0  # events already present (skipped by ON CONFLICT)
        self.rejected = 0
        self.alerts = 0
        self.batches = 0
        # test hook (tests/test_city.py): exit right after the first committed batch
        self._die_after_commit = os.environ.get("SENTINEL_TEST_INGEST_DIE_AFTER_COMMIT") == "1"
        self.conn = Connection(
            broker,
            client_id=client_id,
            clean=False,
            on_message=self._on_message,
            # group None: a plain subscription (one ingester; survives a broker restart)
            subscriptions=tuple(
                f"$share/{group}/{t}" if group else t
                for t in ("sentinel/+/+/events", "sentinel/+/+/heartbeat")
            ),
            v5=True,
            manual_ack=True,
            receive_maximum=receive_maximum,
            session_expiry_s=session_expiry_s,
        )
        self._inner_on_connect = self.conn.client.on_connect
        self.conn.client.on_connect = self._on_connect

    def _on_connect(self, *args: Any) -> None:
        self._gen += 1
        self._inner_on_connect(*args)

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.dsn, autocommit=True, connect_timeout=10)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ingest-writer", daemon=True)
        self._thread.start()
        self.conn.start()

    def _on_message(self, _client: Any, _ud: Any, msg: Any) -> None:
        # paho's network thread: hand over, never block; the writer acknowledges later.
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            topic = ""
        self._inbox.append((topic, msg.payload, msg.mid, msg.qos, self._gen))
        self._wake.set()

    # --- writer thread ---------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._inbox:
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            # gather a batch: up to batch_max messages or batch_wait_s, whichever is first
            deadline = time.monotonic() + self.batch_wait_s
            while len(self._inbox) < self.batch_max and not self._stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._stop.wait(min(left, 0.005))
            items = [self._inbox.popleft() for _ in range(min(len(self._inbox), self.batch_max))]
            self._write(self._parse(items))

    def _parse(self, items: list[tuple[str, bytes, int, int, int]]) -> Batch:
        b = Batch()
        now = datetime.now(UTC)
        for topic_s, payload, mid, qos, gen in items:
            b.acks.append((mid, qos, gen))
            try:
                topic = parse_topic(topic_s)
                if topic.kind == "events":
                    b.events.append(parse_event(payload, topic, now))
                else:
                    b.heartbeats.append(parse_heartbeat(payload, topic, now))
            except FleetError as exc:
                b.rejected += 1
                log.warning("rejected message on %s: %s", topic_s[:120], exc)
        return b

    def _write(self, b: Batch) -> None:
        delay = 0.2
        while True:
            try:
                self._commit(b)
                break
            except psycopg.OperationalError as exc:
                # database away: keep the batch (unacknowledged) and retry
                log.warning("database unavailable (%s); retrying in %.1f s", exc, delay)
                if self._stop.wait(delay):
                    return  # stopping: the broker redelivers to the next run
                delay = min(delay * 2, 10.0)
                try:
                    self.db.close()
                    self.db = self._connect()
                except psycopg.OperationalError:
                    continue
        if self._die_after_commit and b.events:
            os._exit(137)  # test hook: a crash between the commit and the acknowledgements
        for mid, qos, gen in b.acks:  # committed: now, and only now, acknowledge
            if gen == self._gen:  # older connection: the broker redelivers it (skipped)
                self.conn.client.ack(mid, qos)
        self.rejected += b.rejected
        self.batches += 1

    def _ensure_months(self, rows: list[tuple[Any, ...]]) -> None:
        for t in {(r[4].year, r[4].month) for r in rows} - self._partitions_ready:
            ensure_partitions(self.db, date(t[0], t[1], 1), months=1)
            self._partitions_ready.add(t)

    def _commit(self, b: Batch) -> None:
        self._ensure_months(b.events)
        with self.db.transaction():
            if b.events:
                row = self.db.execute(_BATCH, _columns(b.events, len(EXPORT_FIELDS))).fetchone()
                assert row is not None
                new, alert_ids = int(row[0]), list(row[1])
                if alert_ids:
                    self.db.execute("LOCK TABLE central_audit IN SHARE ROW EXCLUSIVE MODE")
                    _audit(self.db, "alert_raised", {"alerts": alert_ids})
                    self.db.execute(
                        "SELECT pg_notify('sentinel_alerts', %s)", (str(len(alert_ids)),)
                    )
            else:
                new, alert_ids = 0, []
            if b.heartbeats:
                self.db.execute(_HEARTBEATS, _columns(b.heartbeats, len(HEARTBEAT_COLUMNS)))
        self.ingested += new
        self.redelivered += len(b.events) - new
        self.alerts += len(alert_ids)

    def drained(self) -> bool:
        return not self._inbox

    def stop(self) -> None:
        """Stop taking messages, write what is in hand, then disconnect."""
        self.conn.client.on_message = None
        end = time.monotonic() + 10
        while self._inbox and time.monotonic() < end and self._thread and self._thread.is_alive():
            time.sleep(0.02)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
        self.conn.stop()
        self.db.close()

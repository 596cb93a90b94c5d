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
* One transaction per batch (up to ``batch_max`` events, v1 and v2 messages alike,
  ``sentinel.fleet.wire``): COPY into a temporary staging table, then one statement
  (data-modifying CTEs): INSERT … ON CONFLICT DO NOTHING into ``events``, the roll-ups
  for every level of each new row's path (per hour and per day, in this ingester's
  ``shard``), and an alert for each new refusal of an authority-marked kind.
* The topic is the identity (security review D3): the broker's ACL lets a device publish
  only on ``sentinel/<its venue>/<its id>/...``; the ingester takes venue and device from
  the topic and refuses a payload that names another, a reason, decision or credential
  kind outside the known sets, and a time outside [now - 400 days, now + 5 minutes].
"""

from __future__ import annotations

import logging
import os
import threading
import time
import zlib
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import psycopg

from sentinel.errors import FleetError
from sentinel.fleet.ingest_sql import _BATCH, _COMPACT, _COPY, _COPY_TYPES, _HEARTBEATS, _STAGE
from sentinel.fleet.lagstats import LagStats
from sentinel.fleet.mqtt import BrokerSettings, Connection
from sentinel.fleet.schema import _audit, ensure_partitions, migrate
from sentinel.fleet.wire import (
    CREDENTIAL_KINDS,
    DECISIONS,
    HEARTBEAT_COLUMNS,
    MAX_AGE,
    MAX_FIELD,
    MAX_FUTURE,
    REASONS,
    Topic,
    parse_event,
    parse_events,
    parse_heartbeat,
    parse_topic,
)

log = logging.getLogger(__name__)

__all__ = [
    "CREDENTIAL_KINDS",
    "DECISIONS",
    "MAX_AGE",
    "MAX_FIELD",
    "MAX_FUTURE",
    "REASONS",
    "Batch",
    "Ingester",
    "Topic",
    "parse_event",
    "parse_events",
    "parse_heartbeat",
    "parse_topic",
]


@dataclass(slots=True)
class Batch:
    events: list[tuple[Any, ...]] = field(default_factory=list)
    heartbeats: list[tuple[Any, ...]] = field(default_factory=list)
    acks: list[tuple[int, int, int]] = field(default_factory=list)  # (mid, qos, generation)
    rejected: int = 0
    # per message (in ``acks`` order): how many events and heartbeats it added, and when
    # it reached this process (time.time())
    spans: list[tuple[int, int]] = field(default_factory=list)
    received: list[float] = field(default_factory=list)

    def split(self) -> list[Batch]:
        """One batch per message (to find the one PostgreSQL refuses)."""
        out, e, h = [], 0, 0
        for k, ack in enumerate(self.acks):
            ne, nh = self.spans[k] if k < len(self.spans) else (0, 0)
            rt = self.received[k : k + 1]
            out.append(
                Batch(
                    self.events[e : e + ne], self.heartbeats[h : h + nh], [ack], 0, [(ne, nh)], rt
                )
            )
            e, h = e + ne, h + nh
        if out:
            out[0].rejected = self.rejected  # refusals already counted while parsing
        return out


def _columns(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    return [[r[i] for r in rows] for i in range(width)]


def shard_of(client_id: str) -> int:
    """The roll-up shard an ingester writes (stable per client id; collisions only slow)."""
    return zlib.crc32(client_id.encode()) % 1024


class Ingester:
    """One member of the ingester group: subscribe, batch, commit, then acknowledge."""

    def __init__(
        self,
        dsn: str,
        broker: BrokerSettings,
        *,
        client_id: str = "sentinel-central",
        group: str | None = "central",
        batch_max: int = 5000,
        batch_wait_s: float = 0.05,
        receive_maximum: int = 2000,
        session_expiry_s: int = 7 * 24 * 3600,
        shard: int | None = None,
        compact_every_s: float = 1.0,
        lag_stats: bool = False,
    ) -> None:
        """``batch_max``: events (and heartbeats) per transaction; ``batch_wait_s``: the
        longest a first message waits for others to join its batch; ``compact_every_s``:
        how often this ingester folds its roll-up deltas into the roll-ups; ``lag_stats``:
        keep per-event lag histograms (``self.lag``, ``sentinel.fleet.lagstats``)."""
        self.dsn = dsn
        self.db = self._connect()
        migrate(self.db)
        self.batch_max = batch_max
        self.batch_wait_s = batch_wait_s
        self.shard = shard_of(client_id) if shard is None else shard
        self._partitions_ready: set[tuple[int, int]] = set()
        self._inbox: deque[tuple[str, bytes, int, int, int, float]] = deque()
        self.compact_every_s = compact_every_s
        self._next_compact = 0.0  # deltas a killed run left behind: fold them first
        self._deltas = True
        self.lag = LagStats() if lag_stats else None
        self._begin = 0.0
        # connection generation: a packet id is only acknowledged on the connection that
        # delivered it (after a reconnect the broker resends, and may reuse ids)
        self._gen = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ingested = 0  # new rows written
        self.redelivered = 0  # events already present (skipped by ON CONFLICT)
        self.rejected = 0  # events (or messages) refused
        self.alerts = 0
        self.batches = 0
        self.messages = 0
        self.commit_s = 0.0  # seconds in COPY + statement + COMMIT (where the time goes)
        self.compactions = 0
        self.compact_s = 0.0
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
        db = psycopg.connect(self.dsn, autocommit=True, connect_timeout=10)
        db.execute(_STAGE)
        return db

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
        self._inbox.append((topic, msg.payload, msg.mid, msg.qos, self._gen, time.time()))
        self._wake.set()

    # --- writer thread ---------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._inbox:
                self._maybe_compact()
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            # gather a batch: up to batch_max events or batch_wait_s, whichever is first
            deadline = time.monotonic() + self.batch_wait_s
            b = Batch()
            now = datetime.now(UTC)
            while len(b.events) + len(b.heartbeats) < self.batch_max:
                if self._inbox:
                    self._take(b, self._inbox.popleft(), now)
                    continue
                left = deadline - time.monotonic()
                if left <= 0 or self._stop.is_set():
                    break
                self._wake.wait(min(left, 0.005))
                self._wake.clear()
            self._write(b)
            self._maybe_compact()

    def _take(self, b: Batch, item: tuple[str, bytes, int, int, int, float], now: datetime) -> None:
        topic_s, payload, mid, qos, gen, received = item
        b.acks.append((mid, qos, gen))
        b.received.append(received)
        n_events, n_heartbeats = len(b.events), len(b.heartbeats)
        try:
            topic = parse_topic(topic_s)
            if topic.kind == "events":
                rows, bad = parse_events(payload, topic, now)
                b.events += rows
                for why in bad:
                    b.rejected += 1
                    log.warning("rejected event on %s: %s", topic_s[:120], why)
            else:
                b.heartbeats.append(parse_heartbeat(payload, topic, now))
        except FleetError as exc:
            b.rejected += 1
            log.warning("rejected message on %s: %s", topic_s[:120], exc)
        b.spans.append((len(b.events) - n_events, len(b.heartbeats) - n_heartbeats))

    def _parse(self, items: list[tuple[str, bytes, int, int, int, float]]) -> Batch:
        b = Batch()
        now = datetime.now(UTC)
        for item in items:
            self._take(b, item, now)
        return b

    def _write(self, b: Batch) -> None:
        delay = 0.2
        while True:
            try:
                t0 = time.perf_counter()
                self._commit(b)
                self.commit_s += time.perf_counter() - t0
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
            except psycopg.Error as exc:
                # not the database away: PostgreSQL refused something in the batch that the
                # checks let through.  Find the message, refuse it alone, write the rest.
                if len(b.acks) > 1:
                    log.warning("batch refused by PostgreSQL (%s); one message at a time", exc)
                    for one in b.split():
                        self._write(one)
                    return
                log.error("message refused by PostgreSQL: %s", exc)
                refused = max(1, sum(b.spans[0]) if b.spans else 1)
                b = Batch(acks=b.acks, rejected=b.rejected + refused)
        if self.lag is not None and b.events:
            self.lag.add(b.events, b.spans, b.received, self._begin, time.time())
        if self._die_after_commit and b.events:
            os._exit(137)  # test hook: a crash between the commit and the acknowledgements
        for mid, qos, gen in b.acks:  # committed: now, and only now, acknowledge
            if gen == self._gen:  # older connection: the broker redelivers it (skipped)
                self.conn.client.ack(mid, qos)
        self.rejected += b.rejected
        self.batches += 1
        self.messages += len(b.acks)

    def _ensure_months(self, rows: list[tuple[Any, ...]]) -> None:
        for t in {(r[4].year, r[4].month) for r in rows} - self._partitions_ready:
            ensure_partitions(self.db, date(t[0], t[1], 1), months=1)
            self._partitions_ready.add(t)

    def _commit(self, b: Batch) -> None:
        self._ensure_months(b.events)
        self._begin = time.time()
        with self.db.transaction():
            if b.events:
                with self.db.cursor().copy(_COPY) as copy:
                    copy.set_types(_COPY_TYPES)
                    for r in b.events:
                        copy.write_row(r)
                row = self.db.execute(_BATCH, {"shard": self.shard}).fetchone()
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
        self._deltas = self._deltas or new > 0

    def _maybe_compact(self) -> None:
        if self._deltas and time.monotonic() >= self._next_compact:
            self.compact()

    def compact(self) -> int:
        """Fold this ingester's roll-up deltas into the roll-ups (one transaction); the
        number of delta rows folded.  On an error the deltas stay for the next try."""
        self._next_compact = time.monotonic() + self.compact_every_s
        t0 = time.perf_counter()
        try:
            with self.db.transaction():
                row = self.db.execute(_COMPACT, {"shard": self.shard}).fetchone()
        except psycopg.Error as exc:
            log.warning("roll-up fold failed (%s); the deltas stay for the next one", exc)
            return 0
        self._deltas = False
        self.compactions += 1
        self.compact_s += time.perf_counter() - t0
        return int(row[0]) if row else 0

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
        if self._deltas and not self.db.closed and not (self._thread and self._thread.is_alive()):
            self.compact()  # what is left unfolded (a killed run's deltas wait for the next)
        self.conn.stop()
        self.db.close()

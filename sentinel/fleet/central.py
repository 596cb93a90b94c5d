"""The centre: an MQTT ingester writing device events to PostgreSQL, idempotently.

* Events land in ``events``, range-partitioned by month on ``time`` with the primary key
  ``(event_id, time)``: a redelivered event (same id, same time) is ignored by
  ``ON CONFLICT DO NOTHING``, so at-least-once delivery never double-counts.
* Each message is committed before paho acknowledges it to the broker (the callback
  returns after the commit), so an ingester crash loses nothing: the broker redelivers.
  The ingester's session is persistent (fixed client id, clean_session false), so the
  broker queues events while the ingester is away.
* Heartbeats upsert ``devices``.  Reports filter by the manager's venues.
* Retention: rows older than ``retention_days`` are rolled into ``daily_counts`` and
  deleted (whole monthly partitions are dropped once wholly outside); every purge appends
  a hash-chained row to ``central_audit``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg

from sentinel.errors import FleetError
from sentinel.fleet.mqtt import BrokerSettings, Connection
from sentinel.fleet.outbox import EXPORT_FIELDS
from sentinel.journal.journal import EVENT_COLUMNS

log = logging.getLogger(__name__)

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE events (
            event_id text NOT NULL,
            device_id text NOT NULL,
            venue text NOT NULL,
            gate text NOT NULL,
            time timestamptz NOT NULL,
            decision text NOT NULL,
            reason text NOT NULL,
            credential_kind text NOT NULL,
            bundle_version text NOT NULL,
            ingested_at timestamptz NOT NULL DEFAULT clock_timestamp(),
            PRIMARY KEY (event_id, time)
        ) PARTITION BY RANGE (time);
        CREATE TABLE events_default PARTITION OF events DEFAULT;
        CREATE INDEX events_venue_time ON events (venue, time);
        CREATE INDEX events_refused ON events (venue, reason, time) WHERE decision = 'refuse';
        CREATE TABLE devices (
            device_id text PRIMARY KEY,
            venue text NOT NULL,
            gate text NOT NULL DEFAULT '',
            last_heartbeat timestamptz NOT NULL,
            bundle_version text NOT NULL DEFAULT '',
            bundle_age_s double precision,
            camera text NOT NULL DEFAULT '',
            gate_state text NOT NULL DEFAULT '',
            disk_free_bytes bigint,
            software text NOT NULL DEFAULT '',
            outbox_backlog integer NOT NULL DEFAULT 0,
            faults text NOT NULL DEFAULT ''
        );
        CREATE TABLE managers (
            username text NOT NULL,
            venue text NOT NULL,
            PRIMARY KEY (username, venue)
        );
        CREATE TABLE daily_counts (
            day date NOT NULL,
            venue text NOT NULL,
            gate text NOT NULL,
            decision text NOT NULL,
            reason text NOT NULL,
            n bigint NOT NULL,
            PRIMARY KEY (day, venue, gate, decision, reason)
        );
        CREATE TABLE central_audit (
            seq bigserial PRIMARY KEY,
            time timestamptz NOT NULL DEFAULT now(),
            kind text NOT NULL,
            details jsonb NOT NULL,
            prev_hash text NOT NULL,
            hash text NOT NULL
        );
        """,
    ),
]


def month_start(d: date) -> date:
    return d.replace(day=1)


def next_month(d: date) -> date:
    return (d.replace(day=28) + timedelta(days=4)).replace(day=1)


def migrate(conn: psycopg.Connection[Any]) -> int:
    """Apply pending migrations; return the schema version."""
    with conn.transaction():
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version int PRIMARY KEY)")
        conn.execute("LOCK TABLE schema_migrations IN EXCLUSIVE MODE")
        row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
        current = int(row[0]) if row else 0
        for version, sql in MIGRATIONS:
            if version > current:
                conn.execute(sql)  # type: ignore[arg-type]
                conn.execute("INSERT INTO schema_migrations VALUES (%s)", (version,))
                current = version
    return current


def ensure_partitions(conn: psycopg.Connection[Any], around: date, months: int = 2) -> None:
    """Monthly partitions from ``around``'s month to ``months`` ahead."""
    m = month_start(around)
    for _ in range(months + 1):
        name = f"events_{m:%Y_%m}"
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF events "  # noqa: S608 (dates only)
            f"FOR VALUES FROM ('{m.isoformat()}') TO ('{next_month(m).isoformat()}')"
        )
        m = next_month(m)


_INSERT = (
    "INSERT INTO events (event_id, device_id, venue, gate, time, decision, reason, "
    "credential_kind, bundle_version) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT DO NOTHING"
)


def parse_event(payload: bytes) -> tuple[Any, ...]:
    """Validate an event payload; return the row for ``_INSERT`` (FleetError if bad)."""
    try:
        doc = json.loads(payload)
        if not isinstance(doc, dict) or set(doc) != set(EXPORT_FIELDS):
            raise ValueError(f"fields {sorted(doc) if isinstance(doc, dict) else type(doc)}")
        values = [doc[k] for k in EXPORT_FIELDS]
        if not all(isinstance(v, str) and len(v) <= 200 for v in values):
            raise ValueError("field not a short string")
        t = datetime.fromisoformat(doc["time"])
        if t.tzinfo is None:
            raise ValueError("time without zone")
    except (ValueError, TypeError) as exc:
        raise FleetError(f"bad event payload: {exc}") from None
    row = dict(zip(EXPORT_FIELDS, values, strict=True))
    row["time"] = t  # type: ignore[assignment]
    return tuple(row[k] for k in EXPORT_FIELDS)


class Ingester:
    """Subscribes to every device's events and heartbeats and writes them to PostgreSQL."""

    def __init__(self, dsn: str, broker: BrokerSettings, *, client_id: str = "sentinel-central"):
        self.dsn = dsn
        self.db = psycopg.connect(dsn, autocommit=True)
        migrate(self.db)
        self._partitions_ready: set[tuple[int, int]] = set()
        self._lock = threading.Lock()
        self.ingested = 0
        self.rejected = 0
        self.conn = Connection(
            broker,
            client_id=client_id,
            clean=False,
            on_message=self._on_message,
            subscriptions=("sentinel/+/+/events", "sentinel/+/+/heartbeat"),
        )

    def start(self) -> None:
        self.conn.start()

    def _on_message(self, _client: Any, _ud: Any, msg: Any) -> None:
        # paho acknowledges (PUBACK) after this returns: commit first.
        try:
            if msg.topic.endswith("/events"):
                self._ingest(msg.payload)
            elif msg.topic.endswith("/heartbeat"):
                self._heartbeat(msg.payload)
        except FleetError as exc:
            self.rejected += 1
            log.warning("rejected message on %s: %s", msg.topic, exc)

    def _ingest(self, payload: bytes) -> None:
        row = parse_event(payload)
        t: datetime = row[4]
        key = (t.year, t.month)
        with self._lock:
            if key not in self._partitions_ready:
                ensure_partitions(self.db, t.date(), months=1)
                self._partitions_ready.add(key)
            self.db.execute(_INSERT, row)
            self.ingested += 1

    def _heartbeat(self, payload: bytes) -> None:
        try:
            hb = json.loads(payload)
            if not isinstance(hb, dict):
                raise ValueError("not an object")
            args = (
                str(hb["device_id"])[:200],
                str(hb.get("venue", ""))[:200],
                str(hb.get("gate", ""))[:200],
                datetime.fromisoformat(str(hb["time"])),
                str(hb.get("bundle_version", ""))[:200],
                _num(hb.get("bundle_age_s")),
                str(hb.get("camera", ""))[:50],
                str(hb.get("gate_state", ""))[:50],
                _num(hb.get("disk_free_bytes")),
                str(hb.get("software", ""))[:50],
                int(_num(hb.get("outbox_backlog")) or 0),
                str(hb.get("faults", ""))[:500],
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise FleetError(f"bad heartbeat: {exc}") from None
        with self._lock:
            self.db.execute(
                """
                INSERT INTO devices (device_id, venue, gate, last_heartbeat, bundle_version,
                    bundle_age_s, camera, gate_state, disk_free_bytes, software,
                    outbox_backlog, faults)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                ON CONFLICT (device_id) DO UPDATE SET venue = EXCLUDED.venue,
                    gate = EXCLUDED.gate, last_heartbeat = EXCLUDED.last_heartbeat,
                    bundle_version = EXCLUDED.bundle_version,
                    bundle_age_s = EXCLUDED.bundle_age_s, camera = EXCLUDED.camera,
                    gate_state = EXCLUDED.gate_state,
                    disk_free_bytes = EXCLUDED.disk_free_bytes,
                    software = EXCLUDED.software, outbox_backlog = EXCLUDED.outbox_backlog,
                    faults = EXCLUDED.faults
                WHERE devices.last_heartbeat <= EXCLUDED.last_heartbeat
                """,
                args,
            )

    def stop(self) -> None:
        self.conn.stop()
        with self._lock:
            self.db.close()


def _num(v: Any) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ValueError("not a number")
    return float(v)


# --- reports -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceHealth:
    device_id: str
    venue: str
    last_heartbeat: datetime
    bundle_age_s: float | None
    outbox_backlog: int
    faults: str
    offline: bool
    stale: bool


def manager_venues(conn: psycopg.Connection[Any], username: str) -> list[str]:
    rows = conn.execute(
        "SELECT venue FROM managers WHERE username = %s ORDER BY venue", (username,)
    ).fetchall()
    return [r[0] for r in rows]


def refusals_by_reason(
    conn: psycopg.Connection[Any], username: str, start: datetime, end: datetime
) -> list[tuple[str, str, int]]:
    """(venue, reason, count) of refusals in [start, end), only the manager's venues."""
    venues = manager_venues(conn, username)
    rows = conn.execute(
        "SELECT venue, reason, count(*) FROM events WHERE decision = 'refuse' "
        "AND venue = ANY(%s) AND time >= %s AND time < %s "
        "GROUP BY venue, reason ORDER BY venue, count(*) DESC, reason",
        (venues, start, end),
    ).fetchall()
    return [(v, r, int(n)) for v, r, n in rows]


def fleet_health(
    conn: psycopg.Connection[Any],
    now: datetime,
    *,
    offline_after_s: float = 180,
    stale_after_s: float = 48 * 3600,
    venues: list[str] | None = None,
) -> list[DeviceHealth]:
    rows = conn.execute(
        "SELECT device_id, venue, last_heartbeat, bundle_age_s, outbox_backlog, faults "
        "FROM devices WHERE %s::text[] IS NULL OR venue = ANY(%s) ORDER BY venue, device_id",
        (venues, venues),
    ).fetchall()
    out = []
    for d, v, hb, age, backlog, faults in rows:
        out.append(
            DeviceHealth(
                d,
                v,
                hb,
                age,
                int(backlog),
                faults,
                offline=(now - hb).total_seconds() > offline_after_s,
                stale=age is None or age > stale_after_s,
            )
        )
    return out


# --- retention ------------------------------------------------------------------------------


def _audit(conn: psycopg.Connection[Any], kind: str, details: dict[str, Any]) -> None:
    row = conn.execute("SELECT hash FROM central_audit ORDER BY seq DESC LIMIT 1").fetchone()
    prev = row[0] if row else "0" * 64
    body = json.dumps(details, sort_keys=True, separators=(",", ":"))
    h = hashlib.sha256(json.dumps([kind, body, prev]).encode()).hexdigest()
    conn.execute(
        "INSERT INTO central_audit (kind, details, prev_hash, hash) VALUES (%s, %s, %s, %s)",
        (kind, body, prev, h),
    )


def purge(conn: psycopg.Connection[Any], now: datetime, retention_days: int) -> int:
    """Roll events older than the window into ``daily_counts``, delete them, audit it."""
    cutoff = now - timedelta(days=retention_days)
    with conn.transaction():
        conn.execute(
            """
            INSERT INTO daily_counts (day, venue, gate, decision, reason, n)
            SELECT (time AT TIME ZONE 'UTC')::date, venue, gate, decision, reason, count(*)
            FROM events WHERE time < %s GROUP BY 1, 2, 3, 4, 5
            ON CONFLICT (day, venue, gate, decision, reason)
            DO UPDATE SET n = daily_counts.n + EXCLUDED.n
            """,
            (cutoff,),
        )
        cur = conn.execute("DELETE FROM events WHERE time < %s", (cutoff,))
        deleted = cur.rowcount
        # the same lock as append_audit: two writers never chain onto one previous hash
        conn.execute("LOCK TABLE central_audit IN SHARE ROW EXCLUSIVE MODE")
        _audit(
            conn,
            "purge",
            {"cutoff": cutoff.isoformat(), "rows": deleted, "retention_days": retention_days},
        )
    # drop monthly partitions now wholly outside the window (they are empty)
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'events' "
        "AND c.relname ~ '^events_[0-9]{4}_[0-9]{2}$'"
    ).fetchall()
    for (name,) in rows:
        y, m = int(name[7:11]), int(name[12:14])
        if next_month(date(y, m, 1)) <= cutoff.date():
            conn.execute(f"DROP TABLE IF EXISTS {name}")  # name matched the pattern above
    return deleted


def utcnow() -> datetime:
    return datetime.now(UTC)


# --- web report queries (sentinel/web/central_app.py) --------------------------------------
# ``venues`` is keyword-only with no default: a caller must say which venues (a manager's
# list) or None (an auditor: every venue). An empty list matches nothing.

_REFUSED_WHERE = (
    "decision = 'refuse' AND time >= %s AND time < %s "
    "AND (%s::text[] IS NULL OR venue = ANY(%s)) "
    "AND (%s::text IS NULL OR venue = %s) "
    "AND (%s::text IS NULL OR gate = %s) "
    "AND (%s::text IS NULL OR reason = %s)"
)
REPORT_COLUMNS = (*EVENT_COLUMNS, "device_id")


@dataclass(frozen=True, slots=True)
class RefusalQuery:
    """Refused entries in [start, end) within ``venues`` (None: all), optionally narrowed."""

    start: datetime
    end: datetime
    venues: list[str] | None
    venue: str | None = None
    gate: str | None = None
    reason: str | None = None

    def params(self) -> tuple[Any, ...]:
        return (
            self.start,
            self.end,
            self.venues,
            self.venues,
            self.venue,
            self.venue,
            self.gate,
            self.gate,
            self.reason,
            self.reason,
        )


@dataclass(frozen=True, slots=True)
class RefusalCounts:
    total: int
    by_reason: list[tuple[str, int]]  # most frequent first
    by_venue: list[tuple[str, int]]
    by_bucket: dict[datetime, int]  # bucket start (UTC) -> count; only non-empty buckets


def refused_events(
    conn: psycopg.Connection[Any], q: RefusalQuery, *, limit: int
) -> list[dict[str, Any]]:
    """Refused entries matching ``q``, oldest first, at most ``limit`` rows."""
    cur = conn.execute(
        f"SELECT {', '.join(REPORT_COLUMNS)} FROM events WHERE {_REFUSED_WHERE} "
        "ORDER BY time, event_id LIMIT %s",
        (*q.params(), limit),
    )
    return [dict(zip(REPORT_COLUMNS, r, strict=True)) for r in cur.fetchall()]


def refusal_counts(
    conn: psycopg.Connection[Any], q: RefusalQuery, *, bucket: str = "day"
) -> RefusalCounts:
    """Counts by reason, venue and hour/day bucket, computed in the database."""
    if bucket not in ("hour", "day"):
        raise ValueError(f"bucket must be hour or day, got {bucket!r}")
    rows = conn.execute(
        "SELECT venue, reason, date_trunc(%s, time AT TIME ZONE 'UTC') AS b, count(*) "
        f"FROM events WHERE {_REFUSED_WHERE} GROUP BY 1, 2, 3",
        (bucket, *q.params()),
    ).fetchall()
    by_reason: dict[str, int] = {}
    by_venue: dict[str, int] = {}
    by_bucket: dict[datetime, int] = {}
    for venue, reason, b, n in rows:
        by_reason[reason] = by_reason.get(reason, 0) + n
        by_venue[venue] = by_venue.get(venue, 0) + n
        key = b.replace(tzinfo=UTC)
        by_bucket[key] = by_bucket.get(key, 0) + n
    return RefusalCounts(
        sum(by_reason.values()),
        sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0])),
        sorted(by_venue.items()),
        by_bucket,
    )


def known_venues(conn: psycopg.Connection[Any]) -> list[str]:
    """Every venue with devices, managers, events or kept counts (the auditor's menu)."""
    # Skip scan over the (venue, time) index: one index probe per venue, not a table scan.
    rows = conn.execute(
        """
        WITH RECURSIVE ev(venue) AS (
            SELECT min(venue) FROM events
            UNION ALL
            SELECT (SELECT min(venue) FROM events WHERE venue > ev.venue)
            FROM ev WHERE ev.venue IS NOT NULL
        )
        SELECT venue FROM ev WHERE venue IS NOT NULL
        UNION SELECT venue FROM devices
        UNION SELECT venue FROM managers
        UNION SELECT DISTINCT venue FROM daily_counts
        ORDER BY 1
        """
    ).fetchall()
    return [r[0] for r in rows]


def venue_gates(conn: psycopg.Connection[Any], venues: list[str] | None) -> list[str]:
    """Gate names of the devices in ``venues`` (None: all), for the filter menu."""
    rows = conn.execute(
        "SELECT DISTINCT gate FROM devices WHERE gate <> '' "
        "AND (%s::text[] IS NULL OR venue = ANY(%s)) ORDER BY gate",
        (venues, venues),
    ).fetchall()
    return [r[0] for r in rows]


def append_audit(conn: psycopg.Connection[Any], kind: str, details: dict[str, Any]) -> None:
    """Append one hash-chained entry to ``central_audit`` (serialized by a table lock)."""
    with conn.transaction():
        # Two writers must not both chain onto the same previous hash.
        conn.execute("LOCK TABLE central_audit IN SHARE ROW EXCLUSIVE MODE")
        _audit(conn, kind, details)


def audit_entries(conn: psycopg.Connection[Any], limit: int = 50) -> list[dict[str, Any]]:
    """The latest ``limit`` audit entries, newest first."""
    rows = conn.execute(
        "SELECT seq, time, kind, details FROM central_audit ORDER BY seq DESC LIMIT %s",
        (limit,),
    ).fetchall()
    return [{"seq": s, "time": t, "kind": k, "details": d} for s, t, k, d in rows]


def verify_audit(conn: psycopg.Connection[Any]) -> tuple[int, int | None]:
    """(entries, first bad seq or None): re-hash the whole ``central_audit`` chain."""
    prev = "0" * 64
    n = 0
    with conn.cursor() as cur:
        cur.execute("SELECT seq, kind, details, prev_hash, hash FROM central_audit ORDER BY seq")
        for seq, kind, details, prev_hash, h in cur:
            body = json.dumps(details, sort_keys=True, separators=(",", ":"))
            want = hashlib.sha256(json.dumps([kind, body, prev]).encode()).hexdigest()
            if prev_hash != prev or h != want:
                return n, int(seq)
            prev, n = h, n + 1
    return n, None

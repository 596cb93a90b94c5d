"""The centre's reports, fleet health, retention and audit over PostgreSQL.

The schema and its migrations are in ``schema.py``, the MQTT ingester in ``ingest.py``
(both re-exported here), the city hierarchy and roll-ups in ``city.py``, alerts in
``alerts.py``.

* Reports filter by the venues a user may see: ``visible_venues(user)`` in SQL (a
  ``managers`` row, or an office scope anywhere on the venue's path in the hierarchy).
* Retention: rows older than ``retention_days`` are rolled into ``daily_counts`` and
  deleted (whole monthly partitions are dropped once wholly outside); every purge appends
  a hash-chained row to ``central_audit``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg

from sentinel.fleet.ingest import Ingester, parse_event
from sentinel.fleet.schema import (
    MIGRATIONS,
    _audit,
    ensure_partitions,
    migrate,
    month_start,
    next_month,
)
from sentinel.journal.journal import EVENT_COLUMNS

log = logging.getLogger(__name__)
__all__ = [
    "MIGRATIONS",
    "Ingester",
    "ensure_partitions",
    "migrate",
    "month_start",
    "next_month",
    "parse_event",
]

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
    """The venues ``username`` may see: listed in ``managers`` or under an office scope."""
    rows = conn.execute("SELECT v FROM visible_venues(%s) AS v ORDER BY v", (username,)).fetchall()
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

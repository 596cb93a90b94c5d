"""The centre's PostgreSQL schema: versioned migrations and monthly partitions.

Migration 1: events (range-partitioned by month), devices, managers, daily counts, audit.
Migration 2: the city hierarchy (``areas``, ``venue_places``), office scopes and the SQL
functions that enforce them, hourly roll-ups per level, alert kinds and alerts.
Migration 3: roll-up rows per ingester (``shard``), so ingesters do not queue on shared rows.
Migration 4: ``rollup_delta``, new rows' counts per venue and hour written with their batch
and folded into the roll-ups about every second (readers add the deltas; ``ingest.py``).

Hierarchy levels (index = ``level``; ``venue_places.path[level + 1]`` is the area):
0 city, 1 district, 2 street, 3 grid, 4 building/community, 5 venue.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from datetime import date, timedelta
from typing import Any

import psycopg

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
    (
        2,
        """
        CREATE TABLE areas (
            level smallint NOT NULL CHECK (level BETWEEN 0 AND 5),
            id text NOT NULL,
            parent text,
            name text NOT NULL DEFAULT '',
            PRIMARY KEY (level, id)
        );
        CREATE INDEX areas_parent ON areas (level, parent);
        CREATE TABLE venue_places (
            venue text PRIMARY KEY,
            path text[] NOT NULL CHECK (cardinality(path) = 6)
        );
        CREATE INDEX venue_places_l0 ON venue_places ((path[1]));
        CREATE INDEX venue_places_l1 ON venue_places ((path[2]));
        CREATE INDEX venue_places_l2 ON venue_places ((path[3]));
        CREATE INDEX venue_places_l3 ON venue_places ((path[4]));
        CREATE INDEX venue_places_l4 ON venue_places ((path[5]));
        CREATE TABLE office_scopes (
            username text NOT NULL,
            level smallint NOT NULL CHECK (level BETWEEN 0 AND 5),
            area text NOT NULL,
            PRIMARY KEY (username, level, area)
        );
        -- Scope, enforced in SQL: a user sees a venue when one of their scopes is on the
        -- venue's path (or the venue is listed for them in managers).
        CREATE FUNCTION visible_venues(u text) RETURNS SETOF text
        LANGUAGE sql STABLE AS $$
            SELECT p.venue FROM venue_places p
            JOIN office_scopes s ON s.username = u AND p.path[s.level + 1] = s.area
            UNION
            SELECT venue FROM managers WHERE username = u
        $$;
        -- (lvl, a) is visible when one of u's scopes is (lvl, a) or an ancestor of it:
        -- a walk up ``areas`` (at most six primary-key probes), then the scopes.
        CREATE FUNCTION area_visible(u text, lvl int, a text) RETURNS boolean
        LANGUAGE sql STABLE AS $$
            WITH RECURSIVE up(level, id) AS (
                SELECT x.level::int, x.id FROM areas x WHERE x.level = lvl AND x.id = a
                UNION ALL
                SELECT x.level::int, x.id FROM up
                JOIN areas c ON c.level = up.level AND c.id = up.id
                JOIN areas x ON x.level = up.level - 1 AND x.id = c.parent
            )
            SELECT EXISTS (
                SELECT 1 FROM office_scopes s JOIN up ON s.level = up.level AND s.area = up.id
                WHERE s.username = u
            ) OR (lvl = 5 AND EXISTS (
                SELECT 1 FROM managers m WHERE m.username = u AND m.venue = a))
        $$;
        CREATE TABLE rollup_hourly (
            level smallint NOT NULL,
            area text NOT NULL,
            hour timestamptz NOT NULL,
            decision text NOT NULL,
            reason text NOT NULL,
            n bigint NOT NULL,
            PRIMARY KEY (level, area, hour, decision, reason)
        );
        -- the same per day (UTC): long windows read days, and hours only at their edges
        CREATE TABLE rollup_daily (
            level smallint NOT NULL,
            area text NOT NULL,
            day date NOT NULL,
            decision text NOT NULL,
            reason text NOT NULL,
            n bigint NOT NULL,
            PRIMARY KEY (level, area, day, decision, reason)
        );
        CREATE TABLE alert_kinds (
            reason text PRIMARY KEY,
            marked_at timestamptz NOT NULL DEFAULT now()
        );
        INSERT INTO alert_kinds (reason) VALUES ('CODE_RED'), ('REVOKED'), ('STATUS_RED');
        CREATE TABLE alerts (
            id bigserial PRIMARY KEY,
            event_id text NOT NULL UNIQUE,
            venue text NOT NULL,
            gate text NOT NULL,
            time timestamptz NOT NULL,
            reason text NOT NULL,
            street text NOT NULL DEFAULT '',
            raised_at timestamptz NOT NULL DEFAULT clock_timestamp(),
            state text NOT NULL DEFAULT 'open'
                CHECK (state IN ('open', 'acknowledged', 'closed')),
            ack_by text, ack_at timestamptz, ack_note text,
            closed_by text, closed_at timestamptz, close_note text
        );
        CREATE INDEX alerts_venue_open ON alerts (venue, raised_at) WHERE state <> 'closed';
        CREATE INDEX alerts_raised ON alerts (raised_at);
        """,
    ),
    (
        3,
        # Each ingester adds to its own roll-up rows (``shard``): two ingesters no longer
        # queue on the same city-level row.  Readers sum over shards (they sum already).
        # Fill factor 80: an increment finds room on its page (a HOT update, no new index
        # entry).
        """
        ALTER TABLE rollup_hourly ADD COLUMN shard smallint NOT NULL DEFAULT 0;
        ALTER TABLE rollup_hourly DROP CONSTRAINT rollup_hourly_pkey;
        ALTER TABLE rollup_hourly ADD CONSTRAINT rollup_hourly_pkey
            PRIMARY KEY (level, area, hour, decision, reason, shard);
        ALTER TABLE rollup_hourly SET (fillfactor = 80);
        ALTER TABLE rollup_daily ADD COLUMN shard smallint NOT NULL DEFAULT 0;
        ALTER TABLE rollup_daily DROP CONSTRAINT rollup_daily_pkey;
        ALTER TABLE rollup_daily ADD CONSTRAINT rollup_daily_pkey
            PRIMARY KEY (level, area, day, decision, reason, shard);
        ALTER TABLE rollup_daily SET (fillfactor = 80);
        """,
    ),
    (
        4,
        # The batch appends its new rows' counts per venue, hour, decision and reason here
        # (a plain insert: no key, no index); its ingester folds them into the six levels of
        # rollup_hourly and rollup_daily about every second, in one statement that deletes
        # what it folds.  Readers add what is still here, so they are never behind.
        """
        CREATE TABLE rollup_delta (
            shard smallint NOT NULL,
            venue text NOT NULL,
            hour timestamptz NOT NULL,
            decision text NOT NULL,
            reason text NOT NULL,
            n bigint NOT NULL
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
    """Monthly partitions from ``around``'s month to ``months`` ahead (autocommit; may race)."""
    m = month_start(around)
    for _ in range(months + 1):
        name = f"events_{m:%Y_%m}"
        # another ingester may create it between the IF NOT EXISTS check and the CREATE
        with contextlib.suppress(psycopg.errors.DuplicateTable, psycopg.errors.UniqueViolation):
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF events "  # noqa: S608 (dates)
                f"FOR VALUES FROM ('{m.isoformat()}') TO ('{next_month(m).isoformat()}')"
            )
        m = next_month(m)


def _audit(conn: psycopg.Connection[Any], kind: str, details: dict[str, Any]) -> None:
    row = conn.execute("SELECT hash FROM central_audit ORDER BY seq DESC LIMIT 1").fetchone()
    prev = row[0] if row else "0" * 64
    body = json.dumps(details, sort_keys=True, separators=(",", ":"))
    h = hashlib.sha256(json.dumps([kind, body, prev]).encode()).hexdigest()
    conn.execute(
        "INSERT INTO central_audit (kind, details, prev_hash, hash) VALUES (%s, %s, %s, %s)",
        (kind, body, prev, h),
    )

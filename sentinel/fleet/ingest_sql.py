"""The ingester's SQL: the batch statement, the roll-up fold, the heartbeat upsert."""

from __future__ import annotations

from sentinel.fleet.wire import HEARTBEAT_COLUMNS

# The batch's events are COPYed into a per-connection temporary table, then one statement
# moves them on.  Only rows the INSERT returned (new ones) reach the roll-ups and the
# alerts, so a redelivered event changes nothing.  New rows are counted per venue and hour
# and appended to ``rollup_delta`` (no key, no index: a few µs a row); the ingester folds
# its own deltas into the six levels every ``compact_every_s`` (``_COMPACT``).  With one
# event per message (live traffic: ~1 event per venue per batch) the fan-out used to cost
# ~8 upserts per event in the batch; folded over seconds, the upper levels cost ~nothing.
_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS ingest_stage (
    event_id text, device_id text, venue text, gate text, time timestamptz,
    decision text, reason text, credential_kind text, bundle_version text
) ON COMMIT DELETE ROWS
"""
# binary: psycopg's C dumpers, no text escaping or timestamp parsing (client 2.9 -> 0.7 µs
# per event, measured)
_COPY = "COPY ingest_stage FROM STDIN (FORMAT BINARY)"
_COPY_TYPES = ["text", "text", "text", "text", "timestamptz", "text", "text", "text", "text"]

_BATCH = """
WITH ins AS (
    INSERT INTO events (event_id, device_id, venue, gate, time, decision, reason,
                        credential_kind, bundle_version)
    SELECT * FROM ingest_stage
    ON CONFLICT DO NOTHING
    RETURNING event_id, venue, gate, time, decision, reason
), delta AS (
    INSERT INTO rollup_delta (shard, venue, hour, decision, reason, n)
    SELECT %(shard)s, venue, date_trunc('hour', time, 'UTC'), decision, reason, count(*)
    FROM ins GROUP BY 2, 3, 4, 5
), al AS (
    INSERT INTO alerts (event_id, venue, gate, time, reason, street)
    SELECT ins.event_id, ins.venue, ins.gate, ins.time, ins.reason, coalesce(p.path[3], '')
    FROM ins LEFT JOIN venue_places p ON p.venue = ins.venue
    WHERE ins.decision = 'refuse' AND ins.reason IN (SELECT reason FROM alert_kinds)
    ON CONFLICT (event_id) DO NOTHING
    RETURNING id
)
SELECT (SELECT count(*) FROM ins), (SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM al)
"""

# Fold this ingester's deltas into the roll-ups: one statement deletes them and adds them
# to every level of each venue's path (per hour and per day, in this ingester's ``shard``),
# so a reader sees a delta either still in ``rollup_delta`` or already in the roll-ups, never
# both or neither.  A crash before COMMIT leaves the deltas for the next run.  Keys are
# written in key order (no deadlock between ingesters that share a shard).
_COMPACT = """
WITH d AS (
    DELETE FROM rollup_delta WHERE shard = %(shard)s
    RETURNING venue, hour, decision, reason, n
), per_venue AS (
    SELECT venue, hour, decision, reason, sum(n) AS n FROM d GROUP BY 1, 2, 3, 4
), keyed AS (
    SELECT l, CASE WHEN l = 5 THEN v.venue ELSE p.path[l + 1] END AS area,
           v.hour, v.decision, v.reason, v.n
    FROM per_venue v LEFT JOIN venue_places p ON p.venue = v.venue
    CROSS JOIN generate_series(0, 5) AS l
    WHERE l = 5 OR p.path IS NOT NULL
), roll AS (
    INSERT INTO rollup_hourly AS r (level, area, hour, decision, reason, shard, n)
    SELECT l, area, hour, decision, reason, %(shard)s, sum(n) FROM keyed
    GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (level, area, hour, decision, reason, shard) DO UPDATE SET n = r.n + EXCLUDED.n
), rolld AS (
    INSERT INTO rollup_daily AS r (level, area, day, decision, reason, shard, n)
    SELECT l, area, (hour AT TIME ZONE 'UTC')::date, decision, reason, %(shard)s, sum(n)
    FROM keyed
    GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (level, area, day, decision, reason, shard) DO UPDATE SET n = r.n + EXCLUDED.n
)
SELECT count(*) FROM d
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

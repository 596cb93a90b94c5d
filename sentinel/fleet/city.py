"""The city hierarchy: city → district → street → grid → building/community → venue.

The authority maintains it as a CSV (``city,district,street,grid,community,venue``, ids;
optional ``name`` columns ``city_name`` … ``venue_name``), imported with
``sentinel central hierarchy-import FILE``.  Each area id belongs to exactly one parent;
an import that says otherwise is refused whole.

Offices see a subtree: ``office_scopes(username, level, area)``.  Every query here takes
the user and asks PostgreSQL (``area_visible`` / ``visible_venues``, schema migration 2)
whether the area is theirs, in the same statement that reads the numbers: a request for
an area outside the subtree returns no rows, whatever the page asked for.

Roll-ups are read from ``rollup_daily`` for whole UTC days and ``rollup_hourly`` for the
hours at a window's edges (both kept in step by the ingester: one row per day or hour,
level, area, decision and reason), plus the deltas the ingesters have not folded in yet
(``rollup_delta``: about the last second, per venue and hour), never from ``events``;
``recount`` rebuilds the same numbers from ``events`` for the tests and for
``sentinel central rollup-check``.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from sentinel.errors import FleetError
from sentinel.fleet.brokerauth import check_id

LEVELS = ("city", "district", "street", "grid", "community", "venue")
LEVEL_TITLES = ("City", "District", "Street", "Grid", "Building / community", "Venue")
MAX_CSV_ROWS = 1_000_000


def level_index(name: str) -> int:
    try:
        return LEVELS.index(name)
    except ValueError:
        raise FleetError(f"unknown level {name[:40]!r}: one of {', '.join(LEVELS)}") from None


def parse_hierarchy(text: str) -> list[tuple[list[str], list[str]]]:
    """(path of 6 ids, path of 6 names) per CSV row; FleetError on any inconsistency."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in LEVELS if c not in (reader.fieldnames or [])]
    if missing:
        raise FleetError(f"hierarchy CSV: missing columns {', '.join(missing)}")
    out: list[tuple[list[str], list[str]]] = []
    parent_of: dict[tuple[int, str], str] = {}
    for n, row in enumerate(reader, start=2):
        if n > MAX_CSV_ROWS:
            raise FleetError(f"hierarchy CSV: more than {MAX_CSV_ROWS} rows")
        path = [str(row.get(c) or "").strip() for c in LEVELS]
        names = [str(row.get(f"{c}_name") or "").strip()[:200] for c in LEVELS]
        for level, area in enumerate(path):
            check_id(area, f"line {n}: {LEVELS[level]}")
            parent = path[level - 1] if level else ""
            seen = parent_of.setdefault((level, area), parent)
            if seen != parent:
                raise FleetError(
                    f"hierarchy CSV line {n}: {LEVELS[level]} {area!r} is under "
                    f"{seen!r} and {parent!r}"
                )
        out.append((path, names))
    return out


def import_hierarchy(conn: psycopg.Connection[Any], text: str) -> int:
    """Replace the hierarchy with the CSV's; returns the number of venues."""
    rows = parse_hierarchy(text)
    areas: dict[tuple[int, str], tuple[str | None, str]] = {}
    for path, names in rows:
        for level, area in enumerate(path):
            prev = areas.get((level, area), (None, ""))
            areas[(level, area)] = (path[level - 1] if level else None, names[level] or prev[1])
    with conn.transaction():
        conn.execute("DELETE FROM venue_places")
        conn.execute("DELETE FROM areas")
        with conn.cursor() as cur:
            with cur.copy("COPY areas (level, id, parent, name) FROM STDIN") as cp:
                for (level, area), (parent, name) in areas.items():
                    cp.write_row((level, area, parent, name))
            with cur.copy("COPY venue_places (venue, path) FROM STDIN") as cp:
                for path, _names in rows:
                    cp.write_row((path[5], path))
    return len(rows)


def add_scope(conn: psycopg.Connection[Any], username: str, level: str, area: str) -> None:
    conn.execute(
        "INSERT INTO office_scopes VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
        (username, level_index(level), area),
    )


def scopes(conn: psycopg.Connection[Any], username: str) -> list[tuple[int, str]]:
    """The roots of ``username``'s subtrees (office scopes, then listed venues)."""
    rows = conn.execute(
        "SELECT level, area FROM office_scopes WHERE username = %s "
        "UNION SELECT 5, venue FROM managers WHERE username = %s ORDER BY 1, 2",
        (username, username),
    ).fetchall()
    return [(int(lv), a) for lv, a in rows]


@dataclass(frozen=True, slots=True)
class AreaCounts:
    level: int
    area: str
    name: str
    total: int
    refused: int
    by_reason: list[tuple[str, int]]  # refusals, most frequent first
    devices: int
    offline: int


# (u, auditor) decide visibility inside the statement: auditor (None user) sees all.
_VISIBLE = "(%(u)s::text IS NULL OR area_visible(%(u)s, %(lvl)s, %(a)s))"

_CHILDREN = f"""
WITH kids AS (
    SELECT id, name FROM areas
    WHERE level = %(lvl)s + 1 AND parent = %(a)s AND {_VISIBLE}
), r AS (
    SELECT area, decision, reason, sum(n) AS n FROM (
        SELECT x.area, x.decision, x.reason, x.n FROM kids JOIN rollup_daily x
            ON x.level = %(lvl)s + 1 AND x.area = kids.id
           AND x.day >= %(d0)s AND x.day < %(d1)s
        UNION ALL
        SELECT x.area, x.decision, x.reason, x.n FROM kids JOIN rollup_hourly x
            ON x.level = %(lvl)s + 1 AND x.area = kids.id
           AND x.hour >= %(start)s AND x.hour < %(h0)s
        UNION ALL
        SELECT x.area, x.decision, x.reason, x.n FROM kids JOIN rollup_hourly x
            ON x.level = %(lvl)s + 1 AND x.area = kids.id
           AND x.hour >= %(h1)s AND x.hour < %(end)s
        UNION ALL
        SELECT kids.id, x.decision, x.reason, x.n FROM rollup_delta x
            LEFT JOIN venue_places p ON p.venue = x.venue
            JOIN kids ON kids.id = CASE WHEN %(lvl)s + 1 = 5 THEN x.venue
                                        ELSE p.path[%(lvl)s + 2] END
        WHERE x.hour >= %(start)s AND x.hour < %(end)s
    ) u
    GROUP BY 1, 2, 3
), d AS (
    SELECT p.path[%(lvl)s + 2] AS area, count(*) AS n,
           count(*) FILTER (WHERE dv.last_heartbeat < %(offline_before)s) AS offline
    FROM devices dv JOIN venue_places p ON p.venue = dv.venue
    WHERE p.path[%(lvl)s + 1] = %(a)s AND {_VISIBLE}
    GROUP BY 1
)
SELECT k.id, k.name, r.decision, r.reason, r.n, coalesce(d.n, 0), coalesce(d.offline, 0)
FROM kids k LEFT JOIN r ON r.area = k.id LEFT JOIN d ON d.area = k.id
ORDER BY k.id
"""

_SELF = f"""
SELECT decision, reason, sum(n) FROM (
    SELECT decision, reason, n FROM rollup_daily
    WHERE level = %(lvl)s AND area = %(a)s AND day >= %(d0)s AND day < %(d1)s
    UNION ALL
    SELECT decision, reason, n FROM rollup_hourly
    WHERE level = %(lvl)s AND area = %(a)s AND hour >= %(start)s AND hour < %(h0)s
    UNION ALL
    SELECT decision, reason, n FROM rollup_hourly
    WHERE level = %(lvl)s AND area = %(a)s AND hour >= %(h1)s AND hour < %(end)s
    UNION ALL
    SELECT x.decision, x.reason, x.n FROM rollup_delta x
        LEFT JOIN venue_places p ON p.venue = x.venue
    WHERE x.hour >= %(start)s AND x.hour < %(end)s
      AND CASE WHEN %(lvl)s = 5 THEN x.venue ELSE p.path[%(lvl)s + 1] END = %(a)s
) x
WHERE {_VISIBLE}
GROUP BY 1, 2
"""


def _window(start: datetime, end: datetime) -> dict[str, Any]:
    """Whole UTC days [d0, d1) from rollup_daily, the hours at the edges from rollup_hourly."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    midnight = start.replace(hour=0, minute=0, second=0, microsecond=0)
    d0 = midnight if midnight == start else midnight + timedelta(days=1)
    d1 = end.replace(hour=0, minute=0, second=0, microsecond=0)
    if d0 >= d1:  # no whole day inside: hours only
        return {"start": start, "end": end, "d0": d0.date(), "d1": d0.date(), "h0": end, "h1": end}
    return {"start": start, "end": end, "d0": d0.date(), "d1": d1.date(), "h0": d0, "h1": d1}


def _fold(level: int, area: str, name: str, rows: list[tuple[str, str, int]]) -> AreaCounts:
    total = refused = 0
    by_reason: dict[str, int] = {}
    for decision, reason, n in rows:
        if decision is None:
            continue
        total += int(n)
        if decision == "refuse":
            refused += int(n)
            by_reason[reason] = by_reason.get(reason, 0) + int(n)
    ranked = sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0]))
    return AreaCounts(level, area, name, total, refused, ranked, 0, 0)


def area_counts(
    conn: psycopg.Connection[Any],
    user: str | None,
    level: int,
    area: str,
    start: datetime,
    end: datetime,
) -> AreaCounts | None:
    """Totals of one area from the roll-ups; None when ``user`` may not see it."""
    params = {"u": user, "lvl": level, "a": area, **_window(start, end)}
    visible = conn.execute(
        f"SELECT {_VISIBLE} AND EXISTS (SELECT 1 FROM areas WHERE level = %(lvl)s AND id = %(a)s)",
        params,
    ).fetchone()
    if not visible or not visible[0]:
        return None
    name_row = conn.execute(
        "SELECT name FROM areas WHERE level = %s AND id = %s", (level, area)
    ).fetchone()
    rows = conn.execute(_SELF, params).fetchall()
    return _fold(level, area, name_row[0] if name_row else "", rows)


def drill_down(
    conn: psycopg.Connection[Any],
    user: str | None,
    level: int,
    area: str,
    start: datetime,
    end: datetime,
    offline_before: datetime,
) -> list[AreaCounts]:
    """One row per child area of (level, area) that ``user`` may see (none if not theirs)."""
    if level >= 5:
        return []
    params = {"u": user, "lvl": level, "a": area, "offline_before": offline_before}
    params.update(_window(start, end))
    grouped: dict[str, tuple[str, list[tuple[str, str, int]], int, int]] = {}
    for kid, name, decision, reason, n, devs, off in conn.execute(_CHILDREN, params):
        entry = grouped.setdefault(kid, (name, [], int(devs), int(off)))
        entry[1].append((decision, reason, n))
    out = []
    for kid, (name, rows, devs, off) in grouped.items():
        c = _fold(level + 1, kid, name, rows)
        out.append(AreaCounts(c.level, c.area, c.name, c.total, c.refused, c.by_reason, devs, off))
    return out


def parent_chain(conn: psycopg.Connection[Any], level: int, area: str) -> list[tuple[int, str]]:
    """(level, id) from the city down to (level, area), for breadcrumbs."""
    chain = [(level, area)]
    while level > 0:
        row = conn.execute(
            "SELECT parent FROM areas WHERE level = %s AND id = %s", (level, area)
        ).fetchone()
        if not row or row[0] is None:
            break
        level, area = level - 1, row[0]
        chain.append((level, area))
    return chain[::-1]


def recount(
    conn: psycopg.Connection[Any], unit: str = "hour"
) -> list[tuple[int, str, Any, str, str, int]]:
    """The roll-ups (``unit`` hour or day) rebuilt from ``events`` with today's hierarchy."""
    bucket = {
        "hour": "date_trunc('hour', e.time, 'UTC')",
        "day": "(e.time AT TIME ZONE 'UTC')::date",
    }[unit]
    rows = conn.execute(
        f"""
        SELECT l, CASE WHEN l = 5 THEN e.venue ELSE p.path[l + 1] END,
               {bucket}, e.decision, e.reason, count(*)
        FROM events e LEFT JOIN venue_places p ON p.venue = e.venue
        CROSS JOIN generate_series(0, 5) AS l
        WHERE l = 5 OR p.path IS NOT NULL
        GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
        """
    ).fetchall()
    return [(int(a), b, c, d, e, int(f)) for a, b, c, d, e, f in rows]


def stored_rollups(
    conn: psycopg.Connection[Any], unit: str = "hour"
) -> list[tuple[int, str, Any, str, str, int]]:
    """The roll-ups as readers see them: the table's rows plus the deltas not yet folded."""
    table, col, bucket = {
        "hour": ("rollup_hourly", "hour", "d.hour"),
        "day": ("rollup_daily", "day", "(d.hour AT TIME ZONE 'UTC')::date"),
    }[unit]
    rows = conn.execute(
        f"""
        SELECT level, area, {col}, decision, reason, sum(n) FROM (
            SELECT level, area, {col}, decision, reason, n FROM {table}
            UNION ALL
            SELECT l, CASE WHEN l = 5 THEN d.venue ELSE p.path[l + 1] END, {bucket},
                   d.decision, d.reason, d.n
            FROM rollup_delta d LEFT JOIN venue_places p ON p.venue = d.venue
            CROSS JOIN generate_series(0, 5) AS l
            WHERE l = 5 OR p.path IS NOT NULL
        ) u
        GROUP BY 1, 2, 3, 4, 5 HAVING sum(n) <> 0 ORDER BY 1, 2, 3, 4, 5
        """
    ).fetchall()
    return [(int(a), b, c, d, e, int(f)) for a, b, c, d, e, f in rows]

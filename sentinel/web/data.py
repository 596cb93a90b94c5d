"""The report pages' one door to the journal: queries, counts and personal fields.

Uses ``Journal.query`` / ``Journal.personal`` when the journal offers them; otherwise
reads the ``events`` table through a read-only SQLite connection with parameterized SQL.
Everything the pages need from the journal goes through ``ReportData``, so switching is
one place.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sentinel.journal.journal import EVENT_COLUMNS

COLUMNS = EVENT_COLUMNS
MAX_ROWS = 100_000  # a report or export never pulls more rows than this


@dataclass(frozen=True, slots=True)
class Filter:
    """Refused entries in [start, end), optionally one gate and one reason."""

    start: datetime
    end: datetime
    gate: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Counts:
    by_reason: list[tuple[str, int]]  # most frequent first
    by_bucket: list[tuple[datetime, int]]  # every bucket in the range, zeros included
    bucket: str  # "hour" or "day"
    total: int


def counts(rows: Iterable[dict[str, Any]], f: Filter) -> Counts:
    """Counts by reason and by hour (ranges up to two days) or by day."""
    rows = list(rows)
    by_reason = Counter(str(r["reason"]) for r in rows)
    hourly = f.end - f.start <= timedelta(days=2)
    step = timedelta(hours=1) if hourly else timedelta(days=1)

    def floor(t: datetime) -> datetime:
        t = t.astimezone(UTC)
        return (
            t.replace(minute=0, second=0, microsecond=0)
            if hourly
            else datetime(t.year, t.month, t.day, tzinfo=UTC)
        )

    by_time = Counter(floor(_parse_time(r["time"])) for r in rows)
    buckets: list[tuple[datetime, int]] = []
    t = floor(f.start)
    while t < f.end and len(buckets) < 1000:
        buckets.append((t, by_time.get(t, 0)))
        t += step
    return Counts(
        sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0])),
        buckets,
        "hour" if hourly else "day",
        len(rows),
    )


def _parse_time(value: Any) -> datetime:
    t = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return t if t.tzinfo else t.replace(tzinfo=UTC)


class ReportData:
    """Read side of the journal for the web pages (safe to call from any thread)."""

    def __init__(
        self,
        journal_path: str | Path,
        *,
        journal: Any | None = None,
        retention_days: int = 14,
    ) -> None:
        self.path = Path(journal_path)
        self._shared = journal  # the daemon's own Journal (thread-safe); else one per call
        self.retention_days = retention_days

    @contextmanager
    def _journal(self) -> Iterator[Any | None]:
        """A Journal (for query/personal): the shared one, or one opened for this call."""
        if self._shared is not None:
            yield self._shared
            return
        if not self.path.exists():
            yield None
            return
        from sentinel.journal import Journal

        journal = Journal(self.path, retention_days=self.retention_days)
        try:
            yield journal
        finally:
            journal.close()

    def _ro(self) -> sqlite3.Connection | None:
        if not self.path.exists():
            return None
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5.0)
        conn.row_factory = sqlite3.Row
        return conn

    def refused(self, f: Filter) -> list[dict[str, Any]]:
        """Refused entries matching ``f``, oldest first."""
        from sentinel.journal import Journal

        if hasattr(Journal, "query"):
            with self._journal() as journal:
                if journal is None:
                    return []
                rows = journal.query(
                    f.start, f.end, gate=f.gate, reason=f.reason, decision="refuse"
                )
                return [_row(r) for r in list(rows)[:MAX_ROWS]]
        conn = self._ro()
        if conn is None:
            return []
        sql = "SELECT * FROM events WHERE decision = 'refuse' AND time >= ? AND time < ?"
        params: list[Any] = [_iso(f.start), _iso(f.end)]
        if f.gate:
            sql += " AND gate = ?"
            params.append(f.gate)
        if f.reason:
            sql += " AND reason = ?"
            params.append(f.reason)
        sql += " ORDER BY time LIMIT ?"
        params.append(MAX_ROWS)
        with closing(conn):
            return [_row(r) for r in conn.execute(sql, params)]

    def gates(self) -> list[str]:
        """Every gate name seen in the journal (for the filter menu)."""
        conn = self._ro()
        if conn is None:
            return []
        with closing(conn):
            return [r[0] for r in conn.execute("SELECT DISTINCT gate FROM events ORDER BY gate")]

    def summary(self) -> dict[str, Any]:
        """Row count and oldest/newest event time (the auditor's retention view)."""
        conn = self._ro()
        if conn is None:
            return {"rows": 0, "oldest": None, "newest": None}
        with closing(conn):
            n, oldest, newest = conn.execute(
                "SELECT COUNT(*), MIN(time), MAX(time) FROM events"
            ).fetchone()
        return {"rows": n, "oldest": oldest, "newest": newest}

    def count_before(self, t: datetime) -> int:
        conn = self._ro()
        if conn is None:
            return 0
        with closing(conn):
            return conn.execute(
                "SELECT COUNT(*) FROM events WHERE time < ?", (_iso(t),)
            ).fetchone()[0]

    def personal(
        self, event_ids: list[str], now: datetime | None = None
    ) -> dict[str, dict[str, Any]]:
        """Personal display fields per event, only where the journal still shows them.

        ``Journal.personal`` returns None outside the retention window (or once the day
        key is destroyed); without it nothing personal is shown at all.
        """
        from sentinel.journal import Journal

        if not event_ids or not hasattr(Journal, "personal"):
            return {}
        out: dict[str, dict[str, Any]] = {}
        with self._journal() as journal:
            if journal is None:
                return {}
            for eid in event_ids:
                p = journal.personal(eid, now) if now is not None else journal.personal(eid)
                if p:
                    out[eid] = dict(p)
        return out


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat()


def _row(r: Any) -> dict[str, Any]:
    d = dict(r) if not isinstance(r, dict) else r
    return {c: ("" if d.get(c) is None else d.get(c)) for c in COLUMNS}

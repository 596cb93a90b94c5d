"""The retention purge: crypto-shred expired day keys, delete their rows, leave no copies.

For every calendar day (UTC) older than the ``retention_days`` window it

1. notes the day in ``purge_log`` (journal DB) with whether a key existed,
2. destroys the day key in the key store (``secure_delete``, WAL truncated) — from here
   on the day's ciphertext is unreadable everywhere, backups included,
3. deletes the day's ``personal`` and ``events`` rows in batches (zeroed in place by
   ``secure_delete``), each batch counted into ``purge_log`` in its own transaction and
   followed by a WAL checkpoint and truncation, so the purge works on a nearly full disk;
   then ``daily_counts`` rows older than ``aggregate_days``,
4. checkpoints the WAL and truncates it to zero bytes, and hands free pages back to the
   file system (incremental vacuum in batches; a full VACUUM of an old journal only when
   there is room for it), so no old page copy remains in the WAL or the file,
5. appends one signed "purge" audit entry per day (which day, how many rows, whether a
   key was destroyed), skipping entries already in the chain.

Each step is a transaction or idempotent, so a purge killed at any point (power cut)
leaves a consistent database and the next run completes it: the day is still found in
step 1 (key, rows or an unaudited ``purge_log`` row remain) and the audit entry is
written exactly once (``purge_id`` is looked up in the chain before appending).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sentinel.errors import JournalError
from sentinel.journal.audit import AuditLog, open_audit
from sentinel.journal.journal import Journal, day_start_iso, first_kept_day
from sentinel.journal.keystore import checkpoint_truncate
from sentinel.journal.space import DiskFull, free_bytes, is_disk_full, rollback_quietly
from sentinel.progress import progress_bar, wanted

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class PurgeResult:
    """What one run did."""

    first_kept_day: date
    days: tuple[date, ...]  # days purged (or finished) in this run
    keys_destroyed: int
    personal_rows: int
    event_rows: int
    count_rows: int
    audit_entries: int
    wal_truncated: bool
    vacuumed: bool


@dataclass(frozen=True, slots=True)
class RetentionState:
    """The retention promise as it stands: nothing personal before ``first_kept_day``."""

    first_kept_day: date
    retention_days: int
    oldest_key_day: date | None
    oldest_personal_day: date | None
    oldest_event_day: date | None
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        iso = lambda d: d.isoformat() if d else None  # noqa: E731
        return {
            "retention_days": self.retention_days,
            "first_kept_day": self.first_kept_day.isoformat(),
            "oldest_key_day": iso(self.oldest_key_day),
            "oldest_personal_day": iso(self.oldest_personal_day),
            "oldest_event_day": iso(self.oldest_event_day),
            "ok": self.ok,
        }


def _expired_days(journal: Journal, first_kept: date) -> list[date]:
    cut = first_kept.isoformat()
    conn = journal.conn
    days = {d for d in journal.keys.days() if d < first_kept}
    rows = conn.execute("SELECT DISTINCT day FROM personal WHERE day < ?", (cut,)).fetchall()
    rows += conn.execute(
        "SELECT DISTINCT substr(time, 1, 10) FROM events WHERE time < ?",
        (day_start_iso(first_kept),),
    ).fetchall()
    days.update(date.fromisoformat(r[0]) for r in rows)
    return sorted(days)


def _pending_id(
    conn: Any, scope: str, day: str, started: str = "", *, key_destroyed: bool = False
) -> str:
    """The unaudited purge_log row of (scope, day), created when there is none.

    The first purge of a day is ``day:<day>``; should rows for that day turn up again
    later (a clock set back), the next one is ``day:<day>#2`` and so on.
    """
    rows = conn.execute(
        "SELECT purge_id, audited FROM purge_log WHERE scope = ? AND day = ?", (scope, day)
    ).fetchall()
    for pid, audited in rows:
        if not audited:
            return str(pid)
    pid = f"{scope}:{day}" + (f"#{len(rows) + 1}" if rows else "")
    conn.execute(
        "INSERT INTO purge_log (purge_id, scope, day, started, key_destroyed) VALUES (?,?,?,?,?)",
        (pid, scope, day, started, int(key_destroyed)),
    )
    return pid


def _tx(journal: Journal, fn: Callable[[], Any]) -> Any:
    conn = journal.conn
    try:
        conn.execute("BEGIN IMMEDIATE")
        out = fn()
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        rollback_quietly(conn)
        cls = DiskFull if is_disk_full(exc) else JournalError
        raise cls(f"{journal.path}: purge step not committed: {exc}") from None
    except BaseException:
        rollback_quietly(conn)
        raise
    return out


def _batch(journal: Journal, most: int) -> int:
    """Rows (or pages) for the next batch: what half the free space holds in WAL frames.

    A deleted row touches up to three pages (table, primary key, day or time index; the
    random event ids spread over the key's pages), each a page-sized WAL frame until the
    checkpoint after the batch.  So a roomy disk gets big batches, a nearly full one
    small ones, and the WAL never needs more than half of what is free.
    """
    page = journal.conn.execute("PRAGMA page_size").fetchone()[0] + 24  # WAL frame header
    return max(8, min(most, free_bytes(journal.path.parent) // 2 // (3 * page)))


def _reclaim(journal: Journal, free_ratio: float, batch_pages: int) -> bool:
    """Give free pages back to the file system; True when any were.

    A journal made with ``auto_vacuum=INCREMENTAL`` (every new one) gives them back in
    batches, each followed by a WAL truncation, so this works on a nearly full disk.
    An older journal needs a VACUUM, which rewrites the whole file (a copy plus its WAL):
    done only when there is room for that, converting it to incremental on the way.
    """
    conn = journal.conn
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    if not free:
        return False
    if conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2:  # INCREMENTAL
        while free:
            # each execute of the pragma frees one page in Python's sqlite3 (one step)
            n = min(free, _batch(journal, batch_pages))

            def steps(n: int = n) -> None:
                for _ in range(n):
                    conn.execute("PRAGMA incremental_vacuum")

            _tx(journal, steps)
            checkpoint_truncate(conn)
            left = conn.execute("PRAGMA freelist_count").fetchone()[0]
            if left >= free:  # no progress: leave the rest for the next purge
                break
            free = left
        return True
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    need = 2 * pages * page_size + journal.write_reserve_bytes
    if free / pages < free_ratio or free_bytes(journal.path.parent) < need:
        return False
    try:
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        conn.execute("VACUUM")
    except sqlite3.Error as exc:
        rollback_quietly(conn)
        log.warning("%s: VACUUM skipped: %s", journal.path, exc)
        return False
    return True


def purge(
    journal: Journal,
    audit: AuditLog,
    *,
    retention_days: int,
    aggregate_days: int,
    now: datetime,
    progress: Progress | None = None,
    vacuum_free_ratio: float = 0.2,
    batch_rows: int = 2000,
) -> PurgeResult:
    """Run the retention purge at ``now``; idempotent and safe to interrupt."""
    step = progress or (lambda _s: None)
    conn = journal.conn
    first_kept = first_kept_day(now, retention_days)
    agg_first_kept = first_kept_day(now, max(aggregate_days, retention_days))
    started = now.astimezone(UTC).isoformat()

    with journal.lock:
        days = _expired_days(journal, first_kept)
        key_days = set(journal.keys.days())

        # 1. plan: one purge_log row per day, remembering whether this purge destroys a key
        def plan() -> None:
            for d in days:
                _pending_id(conn, "day", d.isoformat(), started, key_destroyed=d in key_days)

        _tx(journal, plan)
        step(f"planned {len(days)} day(s)")

        # 2. crypto-shred
        destroyed = journal.keys.destroy(days) if days else []
        step(f"destroyed {len(destroyed)} key(s)")

        # 3. delete rows in batches, each counted per day in its own transaction, the
        # WAL checkpointed and truncated after each: a nearly full disk never needs more
        # than one batch of WAL (review D2).
        def delete_batch(table: str, day_expr: str, col: str, where: str, arg: str) -> int:
            rows = conn.execute(
                f"SELECT rowid, {day_expr} FROM {table} WHERE {where} LIMIT ?",
                (arg, _batch(journal, batch_rows)),
            ).fetchall()
            if not rows:
                return 0
            conn.executemany(f"DELETE FROM {table} WHERE rowid = ?", [(r[0],) for r in rows])
            for k, n in Counter(str(r[1]) for r in rows).items():
                conn.execute(
                    f"UPDATE purge_log SET {col} = {col} + ? WHERE purge_id = ?",
                    (n, _pending_id(conn, "day", k, started)),
                )
            return len(rows)

        n_personal = n_events = 0
        cut = first_kept.isoformat()
        for table, day_expr, col, where, arg in (
            ("personal", "day", "personal_rows", "day < ?", cut),
            ("events", "substr(time, 1, 10)", "event_rows", "time < ?", day_start_iso(first_kept)),
        ):
            # a bar over the rows to go (on a terminal: a large day takes minutes); the
            # count is made only for a bar that shows (not under systemd, not in logs)
            total: int | None = None
            if wanted():
                row = conn.execute(f"SELECT count(*) FROM {table} WHERE {where}", (arg,)).fetchone()
                total = int(row[0])
            with progress_bar(total, f"purge {table} rows", "rows") as bar:
                while n := _tx(
                    journal,
                    lambda t=table, e=day_expr, c=col, w=where, a=arg: delete_batch(t, e, c, w, a),
                ):
                    if table == "personal":
                        n_personal += n
                    else:
                        n_events += n
                    checkpoint_truncate(conn)
                    bar.update(n)

        def delete_counts() -> int:
            n = conn.execute(
                "DELETE FROM daily_counts WHERE day < ?", (agg_first_kept.isoformat(),)
            ).rowcount
            if n:
                pid = _pending_id(conn, "aggregates", agg_first_kept.isoformat(), started)
                conn.execute(
                    "UPDATE purge_log SET count_rows = count_rows + ? WHERE purge_id = ?",
                    (n, pid),
                )
            return int(n)

        n_counts = _tx(journal, delete_counts)
        step(f"deleted {n_personal} personal, {n_events} event, {n_counts} count row(s)")

        # 4. no old page copies: WAL emptied, free pages handed back to the file system
        truncated = checkpoint_truncate(conn)
        vacuumed = _reclaim(journal, vacuum_free_ratio, batch_rows)
        if vacuumed:
            truncated = checkpoint_truncate(conn)
        step(f"wal truncated={truncated} vacuumed={vacuumed}")

        # 5. audit, exactly once per purge_id
        pending = conn.execute(
            "SELECT purge_id, scope, day, key_destroyed, personal_rows, event_rows, "
            "count_rows FROM purge_log WHERE audited = 0 ORDER BY scope = 'aggregates', day"
        ).fetchall()
        appended = 0
        for pid, scope, day, key_destroyed, p_rows, e_rows, c_rows in pending:
            if not audit.has_purge(pid):
                details: dict[str, Any] = {"purge_id": pid, "scope": scope}
                if scope == "day":
                    details.update(
                        day=day,
                        key_destroyed=bool(key_destroyed),
                        personal_rows=p_rows,
                        event_rows=e_rows,
                        retention_days=retention_days,
                    )
                else:
                    details.update(before=day, count_rows=c_rows, aggregate_days=aggregate_days)
                audit.append("purge", details, now=now)
                appended += 1
            _tx(
                journal,
                lambda pid=pid: conn.execute(
                    "UPDATE purge_log SET audited = 1 WHERE purge_id = ?", (pid,)
                ),
            )
            step(f"audited {pid}")
        if pending:
            checkpoint_truncate(conn)

    return PurgeResult(
        first_kept,
        tuple(days),
        len(destroyed),
        n_personal,
        n_events,
        n_counts,
        appended,
        truncated,
        vacuumed,
    )


def retention_state(journal: Journal, retention_days: int, now: datetime) -> RetentionState:
    """Check the retention promise: no day key and no personal row before the window."""
    first_kept = first_kept_day(now, retention_days)
    conn = journal.conn
    with journal.lock:
        key_days = journal.keys.days()
        p = conn.execute("SELECT min(day) FROM personal").fetchone()[0]
        e = conn.execute("SELECT min(substr(time, 1, 10)) FROM events").fetchone()[0]
        unaudited = [
            r[0]
            for r in conn.execute(
                "SELECT purge_id FROM purge_log WHERE audited = 0 ORDER BY purge_id"
            ).fetchall()
        ]
    oldest_key = key_days[0] if key_days else None
    oldest_p = date.fromisoformat(p) if p else None
    oldest_e = date.fromisoformat(e) if e else None
    problems = []
    if oldest_key and oldest_key < first_kept:
        stale = [d.isoformat() for d in key_days if d < first_kept]
        problems.append(f"day key(s) older than the window still exist: {', '.join(stale)}")
    if oldest_p and oldest_p < first_kept:
        problems.append(f"personal rows older than the window remain (oldest {oldest_p})")
    if oldest_e and oldest_e < first_kept:
        problems.append(f"event rows older than the window remain (oldest {oldest_e})")
    if unaudited:
        problems.append(f"purge not yet audited: {', '.join(unaudited)}")
    return RetentionState(
        first_kept, retention_days, oldest_key, oldest_p, oldest_e, tuple(problems)
    )


def audited_purges(journal: Journal) -> list[str]:
    """purge_ids the journal says were audited (each must be in the audit chain)."""
    with journal.lock:
        rows = journal.conn.execute(
            "SELECT purge_id FROM purge_log WHERE audited = 1 ORDER BY purge_id"
        ).fetchall()
    return [r[0] for r in rows]


def chain_purge_ids(entries: list[dict[str, Any]]) -> set[str]:
    out = set()
    for e in entries:
        if e.get("kind") == "purge":
            try:
                pid = json.loads(e["details"]).get("purge_id")
            except (ValueError, AttributeError):
                continue
            if pid:
                out.add(str(pid))
    return out


def open_parts(data_dir: str | Path, retention_days: int) -> tuple[Journal, AuditLog]:
    """The journal and audit log of a data directory (as the daemon lays them out)."""
    d = Path(data_dir)
    journal = Journal(d / "journal.db", retention_days=retention_days)
    try:
        return journal, open_audit(d)
    except BaseException:
        journal.close()
        raise


def run_purge(
    data_dir: str | Path,
    *,
    retention_days: int,
    aggregate_days: int,
    now: datetime | None = None,
    progress: Progress | None = None,
) -> PurgeResult:
    """Open the data directory's journal and audit log, purge, close."""
    now = now or datetime.now(UTC)
    journal, audit = open_parts(data_dir, retention_days)
    with journal, audit:
        from sentinel.journal.pending import recover

        recover(journal, audit)  # a CLI start too: entries a crash kept from the chain
        return purge(
            journal,
            audit,
            retention_days=retention_days,
            aggregate_days=aggregate_days,
            now=now,
            progress=progress,
        )

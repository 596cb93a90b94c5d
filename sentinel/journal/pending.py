"""Audit entries owed by journaled events, and the cross-check that finds gaps.

An override is journaled with ``Journal.record_audited``: its audit entry's details go
into ``audit_pending`` in the same transaction as the event row, and ``deliver`` moves
them into the signed chain.  A crash between the two leaves the row; the next start (the
daemon's journal part, ``sentinel purge``, the next override) delivers it, once: the
chain is searched for the event id under the append lock first (review D4).

``gaps`` is what ``sentinel audit verify`` adds to the chain check: every override in
the journal must be in the chain, no entry may still be owed, and the applied bundle
must have its ``bundle_applied`` entry (review D3).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

from sentinel.journal.audit import AuditLog
from sentinel.journal.journal import Journal
from sentinel.journal.space import rollback_quietly

log = logging.getLogger(__name__)


def pending(journal: Journal) -> list[tuple[str, str, dict[str, Any]]]:
    """(pending_id, kind, details) of every entry still owed, oldest first."""
    with journal.lock:
        rows = journal.conn.execute(
            "SELECT pending_id, kind, details FROM audit_pending ORDER BY rowid"
        ).fetchall()
    return [(str(p), str(k), json.loads(d)) for p, k, d in rows]


def deliver(journal: Journal, audit: AuditLog, *, now: datetime | None = None) -> int:
    """Append every owed entry that is not in the chain yet; return how many appended."""
    appended = 0
    for pid, kind, details in pending(journal):
        if audit.append(kind, details, now, unless=("event_id", str(details["event_id"]))):
            appended += 1
        with journal.lock:
            conn = journal.conn
            try:
                conn.execute("DELETE FROM audit_pending WHERE pending_id = ?", (pid,))
            except sqlite3.Error:
                rollback_quietly(conn)
                raise
    return appended


def recover(journal: Journal, audit: AuditLog) -> int:
    """``deliver`` at start-up: log what a crash had left owed."""
    n = deliver(journal, audit)
    if n:
        log.warning("%d audit entr%s lost to a crash written now", n, "y" if n == 1 else "ies")
    return n


def gaps(journal: Journal, entries: list[dict[str, Any]], data_dir: str | Path) -> list[str]:
    """What happened without its audit entry (empty when nothing)."""
    out: list[str] = []
    chained: dict[str, set[str]] = {"override": set(), "bundle_applied": set()}
    for e in entries:
        if e.get("kind") in chained:
            try:
                d = json.loads(e["details"])
            except (ValueError, TypeError):
                continue
            key = d.get("event_id") if e["kind"] == "override" else d.get("version")
            if key is not None:
                chained[str(e["kind"])].add(str(key))
    owed = pending(journal)
    if owed:
        out.append(
            f"{len(owed)} audit entr{'y' if len(owed) == 1 else 'ies'} owed and not yet in "
            f"the chain ({', '.join(p for p, _k, _d in owed[:3])}); written at the next start"
        )
    owed_ids = {str(d.get("event_id")) for _p, _k, d in owed}
    with journal.lock:
        rows = journal.conn.execute(
            "SELECT event_id, time FROM events WHERE decision = 'override' ORDER BY time"
        ).fetchall()
    missing = [(i, t) for i, t in rows if i not in chained["override"] and i not in owed_ids]
    if missing:
        out.append(
            f"{len(missing)} override(s) in the journal have no audit entry "
            f"(first: event {missing[0][0]} at {missing[0][1]})"
        )
    applied = _applied_bundle(Path(data_dir))
    if applied is not None and applied[0] not in chained["bundle_applied"]:
        out.append(
            f"bundle version {applied[0]} is applied but has no bundle_applied audit entry"
            + (" (owed: written at the next sync or start)" if applied[1] else "")
        )
    return out


def _applied_bundle(data_dir: Path) -> tuple[str, bool] | None:
    """(version, entry owed) of the applied bundle, read-only."""
    db = data_dir / "trust" / "store.db"
    if not db.exists():
        return None
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.Error:
        return None
    finally:
        con.close()
    if "version" not in meta:
        return None
    return str(meta["version"]), "audit_pending" in meta

"""Live alerts: "report and follow up".

A refusal whose reason the authority marks (``alert_kinds``; by default CODE_RED, REVOKED
and STATUS_RED) raises an alert in the same transaction that stores the event (see
``ingest._BATCH``), for the street office on the venue's path.  An alert holds venue,
gate, time and reason only: never a name or a number.  Where identity is legally needed
the sealed check-in record on the device is the path, opened only by the authority key.

The office acknowledges, then closes, each with a note; raising, acknowledging and closing
each append a hash-chained ``central_audit`` entry.  Who may act is decided in SQL: the
UPDATE matches only alerts in ``visible_venues(user)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from sentinel.errors import FleetError
from sentinel.fleet.ingest import REASONS
from sentinel.fleet.schema import _audit

ALERT_COLUMNS = (
    "id",
    "venue",
    "gate",
    "time",
    "reason",
    "street",
    "raised_at",
    "state",
    "ack_by",
    "ack_at",
    "ack_note",
    "closed_by",
    "closed_at",
    "close_note",
)
MAX_NOTE = 500


@dataclass(frozen=True, slots=True)
class Alert:
    id: int
    venue: str
    gate: str
    time: datetime
    reason: str
    street: str
    raised_at: datetime
    state: str
    ack_by: str | None
    ack_at: datetime | None
    ack_note: str | None
    closed_by: str | None
    closed_at: datetime | None
    close_note: str | None


def marked_kinds(conn: psycopg.Connection[Any]) -> list[str]:
    return [r[0] for r in conn.execute("SELECT reason FROM alert_kinds ORDER BY 1")]


def mark_kind(conn: psycopg.Connection[Any], reason: str, *, on: bool = True) -> None:
    """The authority marks (or unmarks) a refusal reason as raising alerts."""
    if reason not in REASONS:
        raise FleetError(f"unknown reason code {reason[:40]!r}")
    if on:
        conn.execute(
            "INSERT INTO alert_kinds (reason) VALUES (%s) ON CONFLICT DO NOTHING", (reason,)
        )
    else:
        conn.execute("DELETE FROM alert_kinds WHERE reason = %s", (reason,))


def list_alerts(
    conn: psycopg.Connection[Any],
    user: str | None,
    *,
    states: tuple[str, ...] = ("open", "acknowledged"),
    limit: int = 200,
) -> list[Alert]:
    """Alerts in ``user``'s venues (None: an auditor, every venue), newest first."""
    rows = conn.execute(
        f"SELECT {', '.join(ALERT_COLUMNS)} FROM alerts "
        "WHERE state = ANY(%s) AND (%s::text IS NULL OR venue IN "
        "(SELECT visible_venues(%s))) ORDER BY raised_at DESC, id DESC LIMIT %s",
        (list(states), user, user, limit),
    ).fetchall()
    return [Alert(*r) for r in rows]


def _note(note: str) -> str:
    note = " ".join(str(note).split())[:MAX_NOTE]
    if not note:
        raise FleetError("a note is required")
    return note


def act(conn: psycopg.Connection[Any], user: str, alert_id: int, action: str, note: str) -> bool:
    """``acknowledge`` (open → acknowledged) or ``close`` (open/acknowledged → closed).

    False when the alert is not in the user's venues or not in a state the action applies
    to (nothing changes, nothing is audited).
    """
    text = _note(note)
    if action == "acknowledge":
        sql = (
            "UPDATE alerts SET state = 'acknowledged', ack_by = %s, ack_at = now(), "
            "ack_note = %s WHERE id = %s AND state = 'open' "
            "AND venue IN (SELECT visible_venues(%s)) RETURNING venue"
        )
    elif action == "close":
        sql = (
            "UPDATE alerts SET state = 'closed', closed_by = %s, closed_at = now(), "
            "close_note = %s WHERE id = %s AND state IN ('open', 'acknowledged') "
            "AND venue IN (SELECT visible_venues(%s)) RETURNING venue"
        )
    else:
        raise FleetError(f"unknown alert action {action[:20]!r}")
    with conn.transaction():
        row = conn.execute(sql, (user, text, alert_id, user)).fetchone()
        if row is None:
            return False
        conn.execute("LOCK TABLE central_audit IN SHARE ROW EXCLUSIVE MODE")
        _audit(
            conn,
            f"alert_{'acknowledged' if action == 'acknowledge' else 'closed'}",
            {"alert": alert_id, "venue": row[0], "user": user, "note": text},
        )
    return True

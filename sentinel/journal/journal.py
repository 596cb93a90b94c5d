"""The journal: one minimal row per presentation, in SQLite (sqlite-utils)."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlite_utils


@dataclass(frozen=True, slots=True)
class Event:
    """One presentation outcome.  No names, no raw identifiers."""

    time: datetime
    venue: str
    gate: str
    decision: str  # "admit" / "refuse" / "event" / "override" / "exit"
    reason: str  # ReasonCode value
    credential_kind: str
    bundle_version: str = ""
    event_id: str = ""


class Journal:
    """Append-only event store.  WAL mode, synchronous=FULL: an acknowledged row survives
    a power cut."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite_utils.Database(self.path)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        if "events" not in self.db.table_names():
            self.db["events"].create(
                {
                    "event_id": str,
                    "time": str,
                    "venue": str,
                    "gate": str,
                    "decision": str,
                    "reason": str,
                    "credential_kind": str,
                    "bundle_version": str,
                },
                pk="event_id",
            )
            self.db["events"].create_index(["time"])

    def record(self, event: Event) -> str:
        row = asdict(event)
        row["event_id"] = event.event_id or uuid.uuid4().hex
        row["time"] = event.time.astimezone(UTC).isoformat()
        with self.db.conn:
            self.db["events"].insert(row)
        return row["event_id"]

    def events(self) -> list[dict[str, object]]:
        return list(self.db["events"].rows_where(order_by="time"))

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

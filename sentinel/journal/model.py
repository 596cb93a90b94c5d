"""What the journal stores: the event row, the personal fields, and time helpers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sentinel.errors import JournalError

# The non-personal columns of an event row; stable: reports and exports read them.
EVENT_COLUMNS = (
    "event_id",
    "time",
    "venue",
    "gate",
    "decision",
    "reason",
    "credential_kind",
    "bundle_version",
)


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


@dataclass(frozen=True, slots=True)
class Personal:
    """The personal display fields of one presentation; stored only encrypted.

    ``display_name`` is the masked name (``M******* E****, 1974``), ``document_masked``
    a masked document number (ID documents; never the number itself), ``pseudonym`` the
    keyed hash that counts repeat refusals.
    """

    display_name: str = ""
    document_masked: str = ""
    pseudonym: str = ""

    def is_empty(self) -> bool:
        return not (self.display_name or self.document_masked or self.pseudonym)


def utc_iso(t: datetime) -> str:
    """The stored form of a time: ISO 8601 in UTC (sorts as text)."""
    if t.tzinfo is None:
        raise JournalError(f"naive datetime {t!r}: journal times must carry a timezone")
    return t.astimezone(UTC).isoformat()


def day_start_iso(day: date) -> str:
    """The stored form of ``day`` 00:00 UTC, for range comparisons."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC).isoformat()


def first_kept_day(now: datetime, days: int) -> date:
    """The oldest calendar day (UTC) inside a window of ``days`` days ending today."""
    return now.astimezone(UTC).date() - timedelta(days=days - 1)


def _as_personal(p: Personal | Mapping[str, str] | None) -> Personal | None:
    if p is None or isinstance(p, Personal):
        return p
    return Personal(**{k: str(v) for k, v in p.items() if v})


def _aad(event_id: str, day: str) -> bytes:
    # Binds a ciphertext to its row: it cannot be moved to another event or day.
    return f"sentinel-journal/1|{event_id}|{day}".encode()

"""Staff override: open the gate once, journal it and append it to the audit chain.

The reason is a key from a fixed menu, not free text, and the staff identity is a
staff id (``staff-07``, a badge number), never a visitor: nothing personal about a
visitor can reach the journal or the audit chain this way.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sentinel.reasons import ReasonCode

log = logging.getLogger(__name__)

# The same keys as the kiosk's override menu (sentinel/web/app.py).
OVERRIDE_REASONS: dict[str, tuple[str, str]] = {
    "paper": ("Paper certificate checked by staff", "工作人员已核验纸质证明"),
    "staff": ("Staff member or supplier", "工作人员或供应商"),
    "device": ("Device problem", "设备故障"),
    "emergency": ("Emergency", "紧急情况"),
}

_STAFF_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True, slots=True)
class OverrideRequest:
    reason: str  # a key of OVERRIDE_REASONS
    staff: str  # a staff id

    @classmethod
    def parse(cls, reason: object, staff: object) -> OverrideRequest:
        """Check both fields; raise ValueError with a message fit for the operator."""
        if not isinstance(reason, str) or reason not in OVERRIDE_REASONS:
            raise ValueError(f"reason must be one of: {', '.join(OVERRIDE_REASONS)}")
        if not isinstance(staff, str) or not _STAFF_ID.fullmatch(staff):
            raise ValueError(
                "staff must be a staff id: 1-64 letters, digits, '.', '_' or '-' "
                "(no names, no e-mail addresses)"
            )
        return cls(reason, staff)


def record_override(
    request: OverrideRequest,
    *,
    gate: Any,
    pipeline: Any,
    data_dir: str | Path,
    via: str = "cli",
    now: datetime | None = None,
) -> str:
    """Open once, journal (decision "override") and audit; return the journal event id.

    The audit entry is committed with the journal row (``audit_pending``) and then moved
    into the chain, so a crash between the two is repaired at the next start (review D4).
    On a full disk (the journal refuses) the entry goes to the chain alone and "" is
    returned; the gate has opened either way.
    """
    from sentinel.errors import JournalError
    from sentinel.journal.audit import open_audit
    from sentinel.journal.pending import deliver

    now = now or datetime.now(UTC)
    gate.override()
    details = {
        "venue": pipeline.config.venue.id,
        "gate": pipeline.config.gate.id,
        "reason": request.reason,
        "staff": request.staff,
        "via": via,
    }
    event_id: str = pipeline.notify(
        pipeline._device_event_of(ReasonCode.OVERRIDE, "override", now),
        audit=("override", details),
    )
    if event_id:
        with open_audit(data_dir) as audit:
            deliver(pipeline.journal, audit, now=now)
        return event_id
    # Disk full: the journal refused (DISK_FULL is on the kiosk); the audit chain still
    # has room below the journal's reserve, so the override goes there directly.
    try:
        with open_audit(data_dir) as audit:
            audit.append("override", {**details, "event_id": "", "journaled": False}, now)
    except JournalError as exc:
        log.error("override at %s recorded nowhere (disk full): %s", now.isoformat(), exc)
    return ""

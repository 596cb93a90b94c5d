"""Service part: sealed check-in records for admitted health codes, and their purge.

Only active when ``[healthcode] checkin_records = true``.  A pipeline listener seals
each admitted health-code presentation to the authority's record key (from the
``healthcode_keys`` part or the keys file) and appends it to ``<data_dir>/checkins.jsonl``;
an hourly job removes records older than ``retention.retention_days`` and audits it.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from sentinel.credentials.healthcode import HealthCodeVerifier
from sentinel.credentials.model import CredentialKind
from sentinel.credentials.records import (
    RECORDS_FILE,
    CheckinRecord,
    append_record,
    purge_records,
    seal,
)

log = logging.getLogger(__name__)

PURGE_INTERVAL_S = 3600.0


class CheckinRecorder:
    """Pipeline listener: one sealed record per admitted health-code presentation."""

    def __init__(self, pipeline: Any, path: Path) -> None:
        self.pipeline = pipeline
        self.path = path
        self.written = 0
        self._warned = False

    def __call__(self, event: Any, decision: Any) -> None:
        if decision is None or not decision.admit:
            return
        if decision.credential_kind is not CredentialKind.HEALTH_CODE:
            return
        verifier: HealthCodeVerifier = self.pipeline.healthcode
        subject = verifier.take_verified(self.pipeline.presentations)
        if subject is None:
            return
        keys = verifier.keys().record_keys
        if not keys:
            if not self._warned:
                log.error("check-in records are on but no record key is known; not recorded")
                self._warned = True
            return
        rec = CheckinRecord(subject, event.time, event.venue, event.gate)
        append_record(self.path, seal(rec, keys[0]))
        self.written += 1


def purge(data_dir: str | Path, now: datetime, retention_days: int) -> int:
    """Purge old check-in records; audit the purge when anything was removed."""
    removed = purge_records(Path(data_dir) / RECORDS_FILE, now, retention_days)
    if removed:
        from sentinel.journal.audit import open_audit

        with open_audit(data_dir) as audit:
            audit.append(
                "purge",
                {"scope": "checkin_records", "removed": removed, "retention_days": retention_days},
                now=now,
            )
    return removed


def attach(daemon: Any) -> None:
    cfg = daemon.config
    if not cfg.healthcode.checkin_records:
        return
    from sentinel.daemon import Periodic

    path = Path(cfg.data_dir) / RECORDS_FILE
    daemon.pipeline.listeners.append(CheckinRecorder(daemon.pipeline, path))
    days = cfg.retention.retention_days
    daemon.add_periodic(
        Periodic(
            "checkin-records-purge",
            PURGE_INTERVAL_S,
            lambda: purge(cfg.data_dir, daemon.clock(), days),
        )
    )

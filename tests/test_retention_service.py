"""The daemon wiring: pseudonym key from the key store, daemon.audit, the purge job."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gpiozero.pins.mock import MockFactory

from sentinel.config import Config, replace
from sentinel.credentials.trustlist import TrustList
from sentinel.daemon import Daemon
from sentinel.journal import Event, Journal
from sentinel.trust import StaticTrust

T0 = datetime(2022, 5, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def test_daemon_gets_pseudonym_key_audit_and_purge_job(tmp_path: Path, trust: TrustList) -> None:
    data = tmp_path / "data"
    old = T0 - 20 * DAY
    with Journal(data / "journal.db", clock=lambda: old) as j:
        j.record(Event(old, "v", "g", "refuse", "EXPIRED", "c"), personal={"display_name": "A*"})
    cfg = replace(Config(), data_dir=str(data))
    cfg = replace(cfg, retention=replace(cfg.retention, retention_days=7, purge_interval_s=600))
    with Daemon(cfg, pin_factory=MockFactory(), trust=StaticTrust(trust), clock=lambda: T0) as d:
        key = d.journal.pseudonym_key()
        assert len(key) == 32 and d.pipeline.pseudonym_key == key
        assert d.journal.retention_days == 7 and d.journal.clock() == T0
        (job,) = [p for p in d.periodic if p.name == "purge"]
        assert job.interval_s == 600
        job.func()
        assert d.journal.events() == []
        entries = d.audit.entries()
        assert [json.loads(e["details"])["day"] for e in entries] == [old.date().isoformat()]
        job.func()  # idempotent
        assert len(d.audit.entries()) == 1

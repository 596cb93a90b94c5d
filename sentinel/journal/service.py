"""Journal parts of the daemon: the audit log, the pseudonym key, the periodic purge."""

from __future__ import annotations

import logging
from typing import Any

from sentinel.journal.audit import open_audit
from sentinel.journal.purge import run_purge

log = logging.getLogger(__name__)


def attach(daemon: Any) -> None:
    """Wire retention into ``daemon``: ``daemon.audit``, pseudonym key, purge job."""
    from sentinel.daemon import Periodic

    cfg = daemon.config
    ret = cfg.retention
    # The daemon's journal decides "inside the window" with the configured days.
    daemon.journal.retention_days = ret.retention_days
    daemon.journal.clock = daemon.clock
    # Holder pseudonyms are keyed with a device-held secret from the key store.
    daemon.pipeline.pseudonym_key = daemon.journal.pseudonym_key()
    daemon.audit = open_audit(cfg.data_dir)
    daemon.add_closer(daemon.audit.close)

    def purge_job() -> None:
        result = run_purge(
            cfg.data_dir,
            retention_days=ret.retention_days,
            aggregate_days=ret.aggregate_days,
            now=daemon.clock(),
        )
        if result.days:
            log.info(
                "purge: %d day(s) before %s, %d key(s) destroyed, %d event row(s) deleted",
                len(result.days),
                result.first_kept_day,
                result.keys_destroyed,
                result.event_rows,
            )

    daemon.add_periodic(Periodic("purge", float(ret.purge_interval_s), purge_job))

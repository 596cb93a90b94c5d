"""Journal parts of the daemon: the audit log, the pseudonym key, the periodic purge."""

from __future__ import annotations

import logging
from typing import Any

from sentinel.journal.audit import open_audit
from sentinel.journal.pending import recover
from sentinel.journal.purge import run_purge
from sentinel.journal.space import clean_temp_files

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
    # Crash leftovers: temp files of dead writers, audit entries a crash kept from
    # the chain (an override's, an applied bundle's): written before serving.
    for p in clean_temp_files(cfg.data_dir):
        log.info("removed leftover temp file %s", p)
    daemon.audit = open_audit(cfg.data_dir)
    daemon.add_closer(daemon.audit.close)
    recover(daemon.journal, daemon.audit)
    _finish_bundle_audit(cfg.data_dir)

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


def _finish_bundle_audit(data_dir: object) -> None:
    from sentinel.trust.store import BundleStore
    from sentinel.trust.sync import finish_bundle_audit

    if not BundleStore.exists(str(data_dir)):
        return
    with BundleStore(str(data_dir)) as store, store.exclusive():
        finish_bundle_audit(store)

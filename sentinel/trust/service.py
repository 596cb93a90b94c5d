"""Sync inside the daemon: every ``trust.sync_interval_s``, with jittered backoff on failure.

Attached only when ``trust.publisher_url`` is set.  A refused bundle never stops the
service: the previous good data keeps serving and the reason is kept for ``sentinel
status``; the policy refuses (or warns) on its own once the data is too old.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sentinel.config import Config, TrustConfig
from sentinel.errors import BundleError, ConfigError
from sentinel.safefs import read_bounded
from sentinel.trust import bundle as bm
from sentinel.trust.store import BundleStore
from sentinel.trust.sync import HttpSource, Syncer, backoff_s

log = logging.getLogger(__name__)


def pinned_root_key(cfg: TrustConfig, override: str | None = None) -> bm.PublicKey:
    """The authority root public key pinned at provisioning (``trust.root_key``)."""
    path = override or cfg.root_key
    if not path:
        raise ConfigError("trust.root_key is not set: pin the authority's root public key (PEM)")
    p = Path(path)
    try:  # a regular file of at most 64 KiB: not /dev/zero, not a FIFO (D10)
        data = read_bounded(p, 64 * 1024)
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read trust.root_key: {exc.strerror or exc}") from None
    try:
        return bm.load_public_key(data, str(p))
    except BundleError as exc:
        raise ConfigError(str(exc)) from None


class SyncService:
    """Decides when the next sync is due; one ``tick()`` runs at most one attempt."""

    def __init__(
        self,
        syncer: Syncer,
        cfg: TrustConfig,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime],
        rng: random.Random | None = None,
    ) -> None:
        self.syncer = syncer
        self.cfg = cfg
        self.monotonic = monotonic
        self.wall = wall
        self.rng = rng or random.Random()
        self.failures = 0
        self.next_at = monotonic()  # first sync at start

    def tick(self) -> bool:
        """Sync if due; return True when an attempt was made."""
        if self.monotonic() < self.next_at:
            return False
        try:
            self.syncer.sync()
        except BundleError:
            self.failures += 1
            delay = backoff_s(self.failures, self.cfg.retry_min_s, self.cfg.retry_max_s, self.rng)
        else:
            self.failures = 0
            delay = float(self.cfg.sync_interval_s)
        self.next_at = self.monotonic() + delay
        nxt = self.wall() + timedelta(seconds=delay)
        self.syncer.store.set_meta(next_sync=nxt.isoformat())
        return True


def attach(daemon: Any) -> None:
    cfg: Config = daemon.config
    trust_close = getattr(daemon.trust, "close", None)
    if callable(trust_close):  # a StoreTrust: release its database and mmap at the end
        daemon.add_closer(trust_close)
    if not cfg.trust.publisher_url:
        return
    from sentinel.daemon import Periodic

    root = pinned_root_key(cfg.trust)
    store = BundleStore(cfg.data_dir)
    source = HttpSource(cfg.trust.publisher_url, timeout_s=cfg.trust.sync_timeout_s)
    syncer = Syncer(store, source, root_key=root, clock=daemon.clock)
    service = SyncService(syncer, cfg.trust, wall=daemon.clock)
    tick_s = max(1.0, min(cfg.trust.retry_min_s, float(cfg.trust.sync_interval_s)) / 2)
    daemon.add_periodic(Periodic("trust-sync", tick_s, service.tick))

    def close() -> None:
        source.close()
        store.close()

    daemon.add_closer(close)
    daemon.trust_sync = service
    log.info("trust sync from %s every %ss", cfg.trust.publisher_url, cfg.trust.sync_interval_s)

"""Fetch a bundle (HTTP with httpx, or a directory from removable media) and apply it.

The checks are the same for both sources: the manifest must verify against the pinned
root key, be unexpired and newer than the applied one; every part must match its
SHA-256 and size (downloads are capped at the declared size); the store applies
all-or-nothing.  On any failure the previous bundle keeps serving, and the reason is kept
in the store (``last_error``) for ``sentinel status``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import random
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx

from sentinel.errors import (
    BundleError,
    BundleExpiredError,
    BundleFormatError,
    BundleHashError,
    BundleRollbackError,
)
from sentinel.progress import progress_bar
from sentinel.safefs import UnsafeFileError, open_regular, read_bounded
from sentinel.trust import bundle as bm
from sentinel.trust import timestamp as ts_mod
from sentinel.trust.store import BundleStore

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"


class SyncError(BundleError):
    """The publisher could not be reached or sent an unusable answer; nothing changed."""


class Source(Protocol):
    description: str

    def timestamp(self) -> bytes | None:
        """The signed timestamp document, or None when the publisher has none."""
        ...

    def manifest(self, etag: str | None) -> tuple[bytes | None, str | None]:
        """(manifest bytes, etag), or (None, etag) when unchanged since ``etag``."""
        ...

    def fetch(self, ref: bm.PartRef, dest: Path) -> int:
        """Copy part ``ref`` to ``dest``, checking size and hash; return bytes read."""
        ...


class DeviceWriteError(BundleError):
    """A part could not be written on the device (e.g. its disk is full); the source is fine."""


# Every download has a total deadline (D6: a part dripped at 1 byte every 2 s kept a sync,
# and the apply lock, busy for ever): trust.sync_timeout_s plus the time the part's
# declared size takes at MIN_RATE; httpx's own timeout only bounds each single read.
MIN_RATE = 16 * 1024  # bytes per second
BAR_BYTES = 8 << 20  # parts this large show a progress bar while they download


def _deadline(timeout_s: float, size: int = 0) -> float:
    return time.monotonic() + timeout_s + size / MIN_RATE


def _timed(chunks: Iterable[bytes], deadline: float, what: str) -> Iterator[bytes]:
    for chunk in chunks:
        if time.monotonic() > deadline:
            raise SyncError(f"{what}: download did not finish in time (too slow)")
        yield chunk


def _check_stream(ref: bm.PartRef, chunks: Any, dest: Path) -> int:
    h = hashlib.sha256()
    total = 0
    try:
        # unbuffered: a write the disk refuses fails here, once, and closing has nothing
        # left to flush (a buffered close re-raised ENOSPC over the named error)
        f = dest.open("wb", buffering=0)
    except OSError as exc:
        raise DeviceWriteError(f"part {ref.name}: cannot write {dest}: {exc.strerror}") from None
    # a bar for a large part (on a terminal: the 1 GB status set of 80 M entries)
    big = ref.size >= BAR_BYTES
    shown = progress_bar(ref.size, f"fetch {ref.name}", "B") if big else contextlib.nullcontext()
    with f, shown as bar:
        for chunk in chunks:
            if bar is not None:
                bar.update(len(chunk))
            total += len(chunk)
            if total > ref.size:
                raise BundleHashError(f"part {ref.name} is larger than its declared {ref.size} B")
            h.update(chunk)
            try:
                view = memoryview(chunk)
                while view:  # a raw write may take only part of the chunk
                    n = f.write(view)
                    if not n:
                        raise OSError(errno.ENOSPC, "the disk took no bytes")
                    view = view[n:]
            except OSError as exc:  # the device's disk, not the source (review D9)
                raise DeviceWriteError(
                    f"part {ref.name}: cannot write {dest} on the device: {exc.strerror}"
                ) from None
    if total != ref.size:
        raise BundleHashError(f"part {ref.name}: got {total} of {ref.size} bytes (cut short)")
    if h.hexdigest() != ref.sha256:
        raise BundleHashError(f"part {ref.name}: bytes do not match the manifest's SHA-256")
    return total


class HttpSource:
    """A publisher directory served by any static HTTP server, object store or CDN."""

    def __init__(
        self,
        base_url: str,
        *,
        client: httpx.Client | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.description = self.base_url
        self.timeout_s = timeout_s
        self._own = client is None
        self.client = client or httpx.Client(
            timeout=httpx.Timeout(timeout_s), follow_redirects=True, trust_env=False
        )

    def _small(self, name: str, cap: int, headers: dict[str, str]) -> tuple[int, bytes, str | None]:
        """(status, body, etag) of a small document, capped and within the deadline."""
        deadline = _deadline(self.timeout_s)
        try:
            with self.client.stream("GET", f"{self.base_url}/{name}", headers=headers) as resp:
                if resp.status_code != 200:
                    return resp.status_code, b"", resp.headers.get("ETag")
                body = bytearray()
                for chunk in _timed(resp.iter_bytes(), deadline, name):
                    body += chunk
                    if len(body) > cap:
                        raise BundleFormatError(f"{name} larger than its cap")
                return 200, bytes(body), resp.headers.get("ETag")
        except httpx.HTTPError as exc:
            raise SyncError(f"cannot fetch {name} from {self.base_url}: {exc}") from None

    def timestamp(self) -> bytes | None:
        # no-cache: a CDN must ask the origin, the timestamp is only hours long-lived
        code, body, _ = self._small(ts_mod.NAME, ts_mod.MAX_BYTES, {"Cache-Control": "no-cache"})
        if code in (403, 404, 410):
            return None
        if code != 200:
            raise SyncError(f"{ts_mod.NAME}: HTTP {code} from {self.base_url}")
        return body

    def manifest(self, etag: str | None) -> tuple[bytes | None, str | None]:
        headers = {"If-None-Match": etag} if etag else {}
        code, body, new_etag = self._small(MANIFEST, bm.MAX_MANIFEST_BYTES, headers)
        if code == 304:  # unauthenticated: the caller does not count it as fresh (D2)
            return None, etag
        if code != 200:
            raise SyncError(f"manifest: HTTP {code} from {self.base_url}")
        return body, new_etag

    def fetch(self, ref: bm.PartRef, dest: Path) -> int:
        deadline = _deadline(self.timeout_s, ref.size)
        try:
            with self.client.stream("GET", f"{self.base_url}/{ref.path}") as resp:
                if resp.status_code != 200:
                    raise SyncError(f"part {ref.name}: HTTP {resp.status_code}")
                return _check_stream(
                    ref, _timed(resp.iter_bytes(), deadline, f"part {ref.name}"), dest
                )
        except httpx.HTTPError as exc:
            raise SyncError(f"download of part {ref.name} failed: {exc}") from None

    def close(self) -> None:
        if self._own:
            self.client.close()


class DirSource:
    """A publisher directory copied to removable media (``sentinel sync --from DIR``).

    Only regular files inside the folder are read (no FIFO, device or symlink: D6), each
    with a bound: the manifest and timestamp at their caps, a part at its declared size."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.description = f"dir:{self.path}"

    def _read(self, name: str, cap: int, what: str) -> bytes:
        p = self.path / name
        try:
            return read_bounded(p, cap, within=self.path)
        except UnsafeFileError as exc:
            if "larger than" in str(exc):
                raise BundleFormatError(f"{what} larger than its cap") from None
            raise SyncError(f"cannot read {p}: {exc}") from None

    def timestamp(self) -> bytes | None:
        try:
            return self._read(ts_mod.NAME, ts_mod.MAX_BYTES, "timestamp")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SyncError(f"cannot read {self.path / ts_mod.NAME}: {exc.strerror}") from None

    def manifest(self, etag: str | None) -> tuple[bytes | None, str | None]:
        try:
            return self._read(MANIFEST, bm.MAX_MANIFEST_BYTES, "manifest"), None
        except OSError as exc:
            raise SyncError(f"cannot read {self.path / MANIFEST}: {exc.strerror}") from None

    def fetch(self, ref: bm.PartRef, dest: Path) -> int:
        p = self.path / ref.path
        try:
            with open_regular(p, within=self.path) as f:
                chunks = iter(lambda: f.read(1 << 20), b"")
                return _check_stream(ref, chunks, dest)  # stops past the declared size
        except UnsafeFileError as exc:
            raise SyncError(f"cannot read part {ref.name}: {exc}") from None
        except OSError as exc:
            raise SyncError(f"cannot read part {ref.name} ({p}): {exc.strerror}") from None

    def close(self) -> None:
        pass


@dataclass(frozen=True, slots=True)
class SyncResult:
    outcome: str  # "applied", "up_to_date", "not_modified"
    version: int | None
    delta: bool = False
    downloaded_bytes: int = 0


AuditFn = Callable[[str, dict[str, Any]], None]


def _default_audit(store: BundleStore) -> AuditFn:
    def append(kind: str, details: dict[str, Any]) -> None:
        from sentinel.journal.audit import open_audit

        with open_audit(store.data_dir) as log_:
            # once per applied manifest, even when a crash makes us try twice
            log_.append(kind, details, unless=("manifest_sha256", str(details["manifest_sha256"])))

    return append


def finish_bundle_audit(store: BundleStore, audit: AuditFn | None = None) -> bool:
    """Write the "bundle_applied" entry a crash kept from the chain; True if one was owed.

    The store commits the entry's details with the bundle (meta ``audit_pending``); the
    sync clears them after the append.  Call with the store's apply lock held.
    """
    raw = store.meta("audit_pending")
    if raw is None:
        return False
    details = json.loads(raw)
    (audit or _default_audit(store))("bundle_applied", {**details, "recovered": True})
    store.set_meta(audit_pending=None)
    log.warning("bundle %s: its audit entry, lost to a crash, written now", details["version"])
    return True


class Syncer:
    """One sync attempt from ``source`` into ``store`` (see ``sync``)."""

    def __init__(
        self,
        store: BundleStore,
        source: Source,
        *,
        root_key: bm.PublicKey,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        audit: AuditFn | None = None,
    ) -> None:
        self.store = store
        self.source = source
        self.root_key = root_key
        self.clock = clock
        self.audit = audit or _default_audit(store)

    def sync(self) -> SyncResult:
        """Check for a new bundle and apply it; raise BundleError (old data stays) if refused."""
        now = self.clock()
        try:
            with self.store.exclusive():
                finish_bundle_audit(self.store, self.audit)  # owed by a crashed apply
                self.store.set_meta(last_attempt=now.isoformat())
                return self._sync(now)
        except BundleError as exc:
            self.store.set_meta(last_error=f"{now.isoformat()} {type(exc).__name__}: {exc}")
            log.warning("bundle refused (%s): %s", self.source.description, exc)
            raise

    def _sync(self, now: datetime) -> SyncResult:
        cur = self.store.current()
        keys = self.store.root_keys(self.root_key)
        ts = self._timestamp(keys, now)
        if ts is not None and cur is not None and ts.names(cur.manifest):
            self._fresh(now, cur.manifest, ts)  # nothing new, and the publisher says so
            return SyncResult("up_to_date", cur.version)
        etag = self.store.meta("etag") if cur is not None else None
        raw, new_etag = self.source.manifest(etag)
        if raw is None:
            # An unsigned 304 proves nothing: no fresher data age, only "no error" (D2).
            self.store.set_meta(last_error=None)
            return SyncResult("not_modified", cur.version if cur else None)
        m = bm.verify_manifest(raw, keys, now)
        # A manifest the timestamp does not name (a stale cache, a replay, an older copy on
        # a stick) may still be applied if it is newer than ours, but only its own
        # issued_at counts for the data age (``_fresh``).
        plan = bm.plan_update(
            m,
            cur.version if cur else self.store.applied_version(),  # an older format: floor
            cur.digest if cur else None,
            self.store.held() if cur else {},
        )
        if plan.up_to_date:
            self.store.set_meta(etag=new_etag, last_error=None)
            self._fresh(now, m, ts)  # a replayed manifest: only its own signed issued_at
            return SyncResult("up_to_date", m.version)
        staging = self.store.staging
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        staged: dict[str, Path] = {}
        total = 0
        try:
            for ref in plan.fetch:
                dest = staging / ref.name
                total += self.source.fetch(ref, dest)
                staged[ref.name] = dest
            details = self.store.apply(
                plan, staged, now=now, source=self.source.description, pinned=self.root_key
            )
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        self.store.set_meta(etag=new_etag)
        self._fresh(now, m, ts)
        details["downloaded_bytes"] = total
        self.audit("bundle_applied", details)
        self.store.set_meta(audit_pending=None)
        log.info(
            "bundle %s applied (%s, %d bytes downloaded)",
            m.version,
            "delta" if plan.use_delta else "full",
            total,
        )
        return SyncResult("applied", m.version, plan.use_delta, total)

    def _timestamp(self, keys: list[bm.PublicKey], now: datetime) -> ts_mod.Timestamp | None:
        """The publisher's signed timestamp if it has one that is valid and not older than
        the newest seen (a replayed older one is refused); expired ones are ignored."""
        raw = self.source.timestamp()
        if raw is None:
            return None
        try:
            ts = ts_mod.verify_timestamp(raw, keys, now)
        except BundleExpiredError as exc:  # the publisher's timer stopped: no freshness
            log.warning("%s: %s; data age from the manifest only", self.source.description, exc)
            return None
        seen = self.store.meta("timestamp_issued_at")
        if seen and ts.issued_at < datetime.fromisoformat(seen):
            raise BundleRollbackError(
                f"timestamp issued {ts.issued_at.isoformat()} is older than the one already "
                f"seen ({seen}): a replay"
            )
        return ts

    def _fresh(self, now: datetime, m: bm.Manifest, ts: ts_mod.Timestamp | None) -> None:
        """Record a good sync; the data age (``fresh_at``) moves only to signed times."""
        signed = m.issued_at
        values: dict[str, str | None] = {"last_good_sync": now.isoformat(), "last_error": None}
        if ts is not None:
            values["timestamp_issued_at"] = ts.issued_at.isoformat()
            if ts.names(m):
                signed = max(signed, ts.issued_at)
        old = self.store.meta("fresh_at")
        fresh = min(signed, now)  # never ahead of this device's clock
        if old and datetime.fromisoformat(old) > fresh:
            fresh = datetime.fromisoformat(old)
        values["fresh_at"] = fresh.isoformat()
        self.store.set_meta(**values)


def backoff_s(
    failures: int, base_s: float, max_s: float, rng: random.Random | None = None
) -> float:
    """Delay before retry number ``failures`` (1, 2, ...): doubling, capped, with jitter
    in [50%, 100%] so a fleet that lost its publisher does not come back in lockstep."""
    delay = min(max_s, base_s * (2 ** max(0, failures - 1)))
    return delay * (rng or random.Random()).uniform(0.5, 1.0)


def retrying(
    attempt: Callable[[], SyncResult],
    *,
    attempts: int,
    base_s: float,
    max_s: float,
    wait: Callable[[float], bool],
) -> SyncResult:
    """Run ``attempt`` up to ``attempts`` times while the failure may be transient
    (network, cut download); ``wait(seconds)`` returns True to give up early (stop)."""
    failures = 0
    while True:
        try:
            return attempt()
        except (SyncError, BundleHashError):
            failures += 1
            if failures >= attempts or wait(backoff_s(failures, base_s, max_s)):
                raise

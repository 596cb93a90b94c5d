"""The device's view of the applied bundle: ``StoreTrust``, the TrustProvider over the
store (``store.py``), and the status lookups over its paged files (``statusfile.py``).

A snapshot is one bundle version taken at once; a new commit is picked up on the next
``snapshot()`` (SQLite ``data_version``) and swapped in whole.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

from sentinel.config import TrustConfig
from sentinel.credentials.trustlist import TrustList
from sentinel.policy import TrustState
from sentinel.trust import bundle as bm
from sentinel.trust import statusfile as sf
from sentinel.trust import statusset as ss
from sentinel.trust.provider import (
    StatusEntry,
    StatusLookup,
    TrustProvider,
    TrustSnapshot,
    snapshot_of,
)
from sentinel.trust.sealing import load_seal_key, open_status_key
from sentinel.trust.store import Applied, BundleStore, parse_revocations

log = logging.getLogger(__name__)


class _Lookup:
    """StatusLookup over the paged status files (overlay first) with the lineage's key.

    The tag of a number is computed once per lookup (a memory-hard KDF by default) and
    kept for the few identities looked up last, in memory only: a presentation looks
    its document up on several frames.
    """

    _RECENT = 8

    def __init__(
        self,
        base: sf.PagedFile,
        overlay: sf.PagedFile | None,
        status_key: bytes,
        kdf: Mapping[str, Any],
        count: int,
    ) -> None:
        self._base = base
        self._overlay = overlay
        self._key = status_key
        self._kdf = dict(kdf)
        self._count = count
        self._recent: dict[bytes, bytes] = {}
        self._lock = threading.Lock()

    def _tag(self, identity: bytes) -> bytes:
        with self._lock:
            hit = self._recent.get(identity)
        if hit is not None:
            return hit
        t = ss.tag(self._key, identity, self._kdf)
        with self._lock:
            if len(self._recent) >= self._RECENT:
                self._recent.pop(next(iter(self._recent)))
            self._recent[identity] = t
        return t

    def get_tag(self, key: bytes) -> StatusEntry | None:
        """The entry of a lookup tag (overlay first, then the base)."""
        hit = self._overlay.get(key) if self._overlay is not None else None
        if hit is None:
            hit = self._base.get(key)
        if hit is None or hit[0] == ss.DELETE:
            return None
        code, until = hit
        code &= ~ss.INSERT
        return StatusEntry(ss.STATUS_NAMES.get(code, "unknown"), datetime.fromtimestamp(until, UTC))

    def _get(self, identity: bytes) -> StatusEntry | None:
        return self.get_tag(self._tag(identity))

    def lookup_document(self, doc_type: str, country: str, number: str) -> StatusEntry | None:
        return self._get(ss.normalize_document(doc_type, country, number))

    def lookup_subject(self, subject_id: str) -> StatusEntry | None:
        return self._get(ss.normalize_subject(subject_id))

    def __len__(self) -> int:
        return self._count


@dataclass(slots=True)
class _Snapshot:
    digest: str = ""
    version: int | None = None
    trust: TrustList = field(default_factory=TrustList)
    revoked: frozenset[str] = frozenset()
    parts: dict[str, bytes] = field(default_factory=dict)
    status: _Lookup | None = None
    status_files: tuple[sf.PagedFile, ...] = ()
    expires_at: datetime | None = None
    updated_at: datetime | None = None


class StoreTrust:
    """The TrustProvider over the applied bundle; picks up new bundles as they commit.

    Before the first bundle is applied it serves ``fallback`` (e.g. a FileTrust), or an
    empty trust list.  ``state().updated_at`` is the last good sync, moved back so that
    the data also counts as stale once the manifest's ``expires_at`` has passed.
    """

    def __init__(
        self,
        data_dir: str | Path,
        config: TrustConfig | None = None,
        *,
        fallback: TrustProvider | None = None,
    ) -> None:
        self.config = config or TrustConfig()
        self.store = BundleStore(data_dir)
        self.fallback = fallback
        self._lock = threading.RLock()
        self._seen_version = -1
        self._snap = _Snapshot()
        self.refresh()

    def refresh(self) -> None:
        """Reload if another connection committed since the last look (cheap when not).

        The new bundle is read in one read transaction and swapped in whole: a
        ``snapshot()`` sees the old version or the new one, never a mix.
        """
        with self._lock:
            dv = self.store.data_version()
            if dv == self._seen_version:
                return
            snap: _Snapshot | None = None
            for attempt in range(3):
                try:
                    with self.store.read_view():
                        snap = self._read(with_status=attempt < 2)
                    break
                except FileNotFoundError:  # status file replaced by a newer commit: reread
                    if attempt == 2:
                        raise
            self._seen_version = dv
            if snap is not None:
                self._snap = snap

    def _read(self, *, with_status: bool = True) -> _Snapshot | None:
        applied = self.store.current()
        if applied is None:
            return None
        # Data age from the newest *signed* time a sync verified (sync.py, D2); a store
        # that no sync of this version has touched yet falls back to the last good sync.
        lgs = self.store.meta("fresh_at") or self.store.meta("last_good_sync")
        last = datetime.fromisoformat(lgs) if lgs else applied.applied_at
        same = applied.digest == self._snap.digest
        snap = self._snap if same else self._load(applied, with_status=with_status)
        return replace(snap, updated_at=last)

    def _load(self, applied: Applied, *, with_status: bool = True) -> _Snapshot:
        m = applied.manifest
        parts = {}
        for name in m.parts:
            data = self.store.part(name)
            if data is not None:
                parts[name] = data
        tl = parts.get("trust_list")
        trust = TrustList.from_json_bytes(tl, "trust_list part") if tl else TrustList()
        rev = parse_revocations(parts["revocations"]) if "revocations" in parts else frozenset()
        status = None
        files: tuple[sf.PagedFile, ...] = ()
        path = self.store.status_path()
        status_key = self._status_key(m, parts.get("status_keys"))
        if m.status is not None and path is not None and status_key is not None:
            try:
                base = sf.PagedFile(path)
                ov = self.store.overlay_path()
                overlay = sf.PagedFile(ov, prefix_filter=True) if ov else None
            except FileNotFoundError:
                if with_status:
                    raise  # replaced by a newer commit meanwhile: refresh() reads again
                # gone for good (an fsck, a hand-made clean-up): serve the rest of the
                # bundle, refuse what needs a status (NO_TRUST_DATA); the next sync takes
                # the full set (BundleStore.held)
                log.error(
                    "bundle %s: its status set files are missing; status lookups are "
                    "unavailable until the next sync",
                    m.version,
                )
            else:
                files = (base, overlay) if overlay is not None else (base,)
                status = _Lookup(base, overlay, status_key, m.status.kdf, m.status.count)
        # The old status files are not closed here: a presentation may still be looking
        # them up; their descriptors go with the last reference.
        return _Snapshot(
            digest=applied.digest,
            version=m.version,
            trust=trust,
            revoked=rev,
            parts=parts,
            status=status,
            status_files=files,
            expires_at=m.expires_at,
        )

    def _status_key(self, m: bm.Manifest, sealed: bytes | None) -> bytes | None:
        """The lineage's status key, opened with this device's seal key (None, logged,
        when this device was not among the enrolled devices the bundle was sealed to)."""
        if m.status is None or sealed is None:
            return None
        key = load_seal_key(self.store.data_dir)
        opened = open_status_key(sealed, key, m.status.key_id) if key is not None else None
        if opened is None:
            log.error(
                "bundle %s: the status set is sealed to other devices (enroll this one: "
                "sentinel enroll); status lookups are unavailable",
                m.version,
            )
        return opened

    def snapshot(self) -> TrustSnapshot:
        """The applied bundle (or the fallback before the first one), taken at once."""
        with self._lock:
            self.refresh()
            snap = self._snap
        if snap.version is None:
            if self.fallback is not None:
                return snapshot_of(self.fallback)
            return TrustSnapshot(TrustList(), TrustState(bundle_version="", updated_at=None))
        return TrustSnapshot(
            snap.trust, self._state_of(snap), snap.status, MappingProxyType(snap.parts)
        )

    def _state_of(self, snap: _Snapshot) -> TrustState:
        max_age = timedelta(hours=self.config.max_data_age_hours)
        updated = snap.updated_at
        if updated is not None and snap.expires_at is not None:
            updated = min(updated, snap.expires_at - max_age)
        revoked = snap.revoked

        def is_revoked(keys: Sequence[str]) -> bool:
            return any(k in revoked for k in keys)

        return TrustState(
            bundle_version=str(snap.version),
            updated_at=updated,
            max_age=max_age,
            stale_action=self.config.stale_action,
            is_revoked=is_revoked,
        )

    # The single-value accessors, each from one snapshot (a decision takes ``snapshot()``).
    def trust_list(self) -> TrustList:
        return self.snapshot().trust_list

    def state(self) -> TrustState:
        return self.snapshot().state

    def status(self) -> StatusLookup | None:
        return self.snapshot().status

    def part(self, name: str) -> bytes | None:
        return self.snapshot().part(name)

    @property
    def version(self) -> int | None:
        self.refresh()
        return self._snap.version

    def close(self) -> None:
        with self._lock:
            for f in self._snap.status_files:
                f.close()
            self.store.close()

    def __enter__(self) -> StoreTrust:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

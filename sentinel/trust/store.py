"""The device's applied credential set: SQLite store + mmapped status file, and its provider.

Layout under ``<data_dir>/trust/``::

    store.db                 SQLite: table meta (key → value), table parts (name, sha256, data)
    status/<sha256>.sset     the applied status set, named by its digest (see statusset.py)
    staging/                 downloads in progress (cleared before each sync)
    apply.lock               one sync at a time (daemon timer, `sentinel sync`)

Apply is all-or-nothing: the new status file is written and checked under its own name
first, then one SQLite transaction switches version, manifest, small parts and the status
file name.  A reader sees the old bundle or the new one, never a mix; a crash before
the commit leaves the old bundle in place.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

from sentinel.config import TrustConfig
from sentinel.credentials.trustlist import TrustList
from sentinel.errors import BundleError, BundleFormatError, BundleHashError, ConfigError
from sentinel.policy import TrustState
from sentinel.progress import progress_bar
from sentinel.safefs import private_dir, private_file
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

log = logging.getLogger(__name__)

# A delta is kept as an overlay until it holds this share of the base's entries.
COMPACT_RATIO = 0.05
COMPACT_MIN = 1000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS parts (name TEXT PRIMARY KEY, sha256 TEXT NOT NULL, data BLOB NOT NULL);
"""


def parse_revocations(data: bytes) -> frozenset[str]:
    """The revocations part: ``{"keys": ["UCI:<hex>", "COUNTRYCODEUCI:<hex>", ...]}``."""
    try:
        doc = json.loads(data)
        keys = doc["keys"]
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise TypeError("keys must be a list of strings")
    except (ValueError, KeyError, TypeError) as exc:
        raise BundleFormatError(f"revocations part unreadable: {exc}") from None
    return frozenset(keys)


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class Applied:
    version: int
    digest: str
    manifest: bm.Manifest
    status_file: str
    applied_at: datetime


class BundleStore:
    """The SQLite store of the applied bundle (one per device data directory)."""

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir)
        self.root = self.data_dir / "trust"
        private_dir(self.data_dir)
        private_dir(self.root / "status")
        self.db_path = private_file(self.root / "store.db")  # 0600 in 0700 dirs, any umask
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.db_path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    @staticmethod
    def exists(data_dir: str | Path) -> bool:
        """True when a bundle has been applied under ``data_dir``."""
        db = Path(data_dir) / "trust" / "store.db"
        if not db.exists():
            return False
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            row = con.execute("SELECT value FROM meta WHERE key='version'").fetchone()
        except sqlite3.Error:
            return False
        finally:
            con.close()
        return row is not None

    @property
    def staging(self) -> Path:
        return self.root / "staging"

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the store's apply lock (across processes) for one whole sync."""
        with (self.root / "apply.lock").open("a") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    # ---- meta ---------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def _write_meta(self, values: dict[str, str | None]) -> None:
        """Set (or, for None, delete) meta keys inside the caller's transaction."""
        for k, v in values.items():
            if v is None:
                self._db.execute("DELETE FROM meta WHERE key=?", (k,))
            else:
                self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (k, v))

    def set_meta(self, **values: str | None) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._write_meta(values)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    @contextlib.contextmanager
    def read_view(self) -> Iterator[None]:
        """One read transaction: every read inside sees the same committed bundle, even
        while another connection (the sync) commits a new one."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                yield
            finally:
                self._db.execute("COMMIT")

    def data_version(self) -> int:
        with self._lock:
            return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    def current(self) -> Applied | None:
        raw = self.meta("manifest")
        if raw is None:
            return None
        m = bm.parse_stored(raw.encode())
        return Applied(
            version=m.version,
            digest=m.digest,
            manifest=m,
            status_file=self.meta("status_file") or "",
            applied_at=datetime.fromisoformat(self.meta("applied_at") or _iso(datetime.now(UTC))),
        )

    def held(self) -> dict[str, str]:
        """Part name → sha256 of what the device holds ("status": the raw set's digest)."""
        with self._lock:
            out = dict(self._db.execute("SELECT name, sha256 FROM parts").fetchall())
        digest = self.meta("status_sha256")
        if digest:
            out["status"] = digest
        return out

    def part(self, name: str) -> bytes | None:
        with self._lock:
            row = self._db.execute("SELECT data FROM parts WHERE name=?", (name,)).fetchone()
        return bytes(row[0]) if row else None

    def status_path(self) -> Path | None:
        """The base status set file (full set as of the last full apply or compaction)."""
        sf = self.meta("status_file")
        return self.root / "status" / sf if sf else None

    def overlay_path(self) -> Path | None:
        """The composed deltas applied since the base, if any (looked up first)."""
        of = self.meta("overlay_file")
        return self.root / "status" / of if of else None

    def root_keys(self, pinned: bm.PublicKey | None) -> list[bm.PublicKey]:
        """Keys a new manifest may be signed with: the current root (rotated or pinned)
        and the next root the applied manifest announced."""
        keys: list[bm.PublicKey] = []
        cur = self.meta("root_key")
        if cur:
            keys.append(bm.load_public_key(cur.encode(), "store root_key"))
        elif pinned is not None:
            keys.append(pinned)
        nxt = self.meta("root_key_next")
        if nxt:
            keys.append(bm.load_public_key(nxt.encode(), "store root_key_next"))
        return keys

    # ---- apply --------------------------------------------------------------
    def apply(
        self,
        plan: bm.Plan,
        staged: Mapping[str, Path],
        *,
        now: datetime,
        source: str,
        pinned: bm.PublicKey | None = None,
    ) -> dict[str, Any]:
        """Apply ``plan`` with the downloaded (hash-checked) parts in ``staged``, atomically.

        Returns the audit details.  Raises BundleError and leaves the old bundle in place
        if anything does not check out.
        """
        m = plan.manifest
        small: dict[str, tuple[str, bytes]] = {}
        for name, ref in m.parts.items():
            if name in ("status", "status_delta"):
                continue
            if name in staged:
                data = staged[name].read_bytes()
            else:
                held = self.part(name)
                if held is None:
                    raise BundleError(f"part {name} was neither downloaded nor held")
                data = held
            small[name] = (ref.sha256, data)
        if "trust_list" in small:
            try:
                TrustList.from_json_bytes(small["trust_list"][1], "trust_list part")
            except ConfigError as exc:
                raise BundleFormatError(str(exc)) from None
        if "revocations" in small:
            parse_revocations(small["revocations"][1])
        if "status_keys" in small and m.status is not None:
            key = load_seal_key(self.data_dir)
            if key is not None:  # a malformed part is refused before anything changes
                open_status_key(small["status_keys"][1], key, m.status.key_id)
        status_meta = self._apply_status(plan, staged)
        prev = self.current()
        rotate: dict[str, str | None] = {}
        cur_nxt = self.meta("root_key_next")
        if cur_nxt and m.signed_by == bm.key_id(bm.load_public_key(cur_nxt.encode())):
            rotate["root_key"] = cur_nxt  # the announced key took over: drop the old one
            rotate["root_key_next"] = None
        if m.next_root_key is not None:
            rotate["root_key_next"] = m.next_root_key.decode()
            if self.meta("root_key") is None and pinned is not None and "root_key" not in rotate:
                rotate["root_key"] = bm.public_pem(pinned).decode()
        details = {
            "version": m.version,
            "previous_version": prev.version if prev else None,
            "manifest_sha256": m.digest,
            "delta": plan.use_delta,
            "source": source,
            "parts": {n: r.sha256 for n, r in sorted(m.parts.items())},
            "status_entries": m.status.count if m.status else 0,
            "status_sha256": m.status.sha256 if m.status else None,
        }
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM parts")
                self._db.executemany(
                    "INSERT INTO parts(name, sha256, data) VALUES (?, ?, ?)",
                    [(n, h, d) for n, (h, d) in small.items()],
                )
                values = {
                    "version": str(m.version),
                    "manifest": m.raw.decode(),
                    **status_meta,
                    "applied_at": _iso(now),
                    "last_good_sync": _iso(now),
                    "last_error": None,
                    # the audit entry this apply owes, committed with it (sync.py
                    # clears it once the entry is in the chain; review D3)
                    "audit_pending": json.dumps(details, sort_keys=True),
                    **rotate,
                }
                self._write_meta(values)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        self._clean_status_files()
        return details

    def _apply_status(self, plan: bm.Plan, staged: Mapping[str, Path]) -> dict[str, str | None]:
        """Write the new status files; return the meta values naming them (not committed).

        A full set is inflated and rewritten as pages in bounded chunks (its set digest
        checked on the way) and replaces base and overlay.  A delta is composed into the
        overlay (a small paged file looked up before the base), so its cost follows the
        size of the delta, not of the set; once the overlay passes ``COMPACT_RATIO`` of
        the base it is merged into a new base, streamed, whose digest must equal the
        manifest's ``status.sha256``.
        """
        m = plan.manifest
        if m.status is None:
            return {"status_file": None, "overlay_file": None, "status_sha256": None}
        base_path = self.status_path()
        if self.meta("status_sha256") == m.status.sha256 and base_path and base_path.exists():
            return {}  # the same set, already held
        kid = bytes.fromhex(m.status.key_id)
        status_dir = self.root / "status"
        if not plan.use_delta:
            ref = m.parts["status"]
            if ref.raw_size != m.status.size:
                raise BundleFormatError("status part and status description disagree")
            raw = staged["status"].with_suffix(".raw")
            ss.decompress_to(staged["status"], raw, ref.raw_size, ref.raw_sha256)
            staged["status"].unlink()  # the compressed copy is no longer needed
            wire = ss.WireFile(raw)
            if wire.count != m.status.count or wire.kind != ss.KIND_FULL or wire.key_id != kid:
                raise BundleFormatError("status set count, kind or key does not match")
            final = status_dir / f"{m.status.sha256}.sset"
            tmp = final.with_suffix(".tmp")
            with progress_bar(wire.count, "apply status set", unit="entries") as bar:
                digest = sf.convert_wire(wire, tmp, bar)
            raw.unlink()
            if digest != m.status.sha256:
                tmp.unlink()
                raise BundleHashError("status set digest does not match the manifest")
            os.replace(tmp, final)
            _fsync_dir(status_dir)
            return {
                "status_file": final.name,
                "overlay_file": None,
                "status_sha256": m.status.sha256,
            }

        ref = m.parts["status_delta"]
        raw_delta = staged["status_delta"].with_suffix(".raw")
        ss.decompress_to(staged["status_delta"], raw_delta, ref.raw_size, ref.raw_sha256)
        if base_path is None or not base_path.exists():
            raise BundleError("delta needs the base status set, which is missing")
        delta_file = ss.WireFile(raw_delta)
        if delta_file.kind != ss.KIND_DELTA or delta_file.key_id != kid:
            raise BundleFormatError("status_delta part is not a delta of this status key")
        delta = delta_file.columns()
        with sf.PagedFile(base_path) as base:
            if base.key_id != kid:
                raise BundleFormatError("status delta uses another status key than its base")
            ov_path = self.overlay_path()
            if ov_path is not None:
                with sf.PagedFile(ov_path) as ovf:
                    overlay = ss.compose(ovf.columns(), delta)
            else:
                overlay = ss.compose(ss.Columns.empty(ss.KIND_DELTA), delta)
            if ss.count_after(base.count, overlay) != m.status.count:
                raise BundleHashError("status set after the delta has the wrong entry count")
            if len(overlay) <= max(COMPACT_MIN, COMPACT_RATIO * base.count):
                name = f"overlay-{m.status.sha256}-{m.version}.sset"
                tmp = status_dir / f"{name}.tmp"
                sf.write_columns(tmp, overlay, kid)
                os.replace(tmp, status_dir / name)
                _fsync_dir(status_dir)
                return {"overlay_file": name, "status_sha256": m.status.sha256}
            final = status_dir / f"{m.status.sha256}.sset"
            tmp = final.with_suffix(".tmp")
            with progress_bar(base.count, "compact status set", unit="entries") as bar:
                digest = sf.merge_into(base, overlay, tmp, bar)
        if digest != m.status.sha256:
            tmp.unlink()
            raise BundleHashError("status set after the delta does not match the manifest")
        os.replace(tmp, final)
        _fsync_dir(status_dir)
        return {"status_file": final.name, "overlay_file": None, "status_sha256": m.status.sha256}

    def _clean_status_files(self) -> None:
        keep = {self.meta("status_file"), self.meta("overlay_file")}
        for p in (self.root / "status").iterdir():
            if p.name not in keep:
                try:
                    p.unlink()
                except OSError:  # pragma: no cover - best effort
                    log.warning("cannot remove old status file %s", p)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> BundleStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
                        snap = self._read()
                    break
                except FileNotFoundError:  # status file replaced by a newer commit: reread
                    if attempt == 2:
                        raise
            self._seen_version = dv
            if snap is not None:
                self._snap = snap

    def _read(self) -> _Snapshot | None:
        applied = self.store.current()
        if applied is None:
            return None
        # Data age from the newest *signed* time a sync verified (sync.py, D2); a store
        # that no sync of this version has touched yet falls back to the last good sync.
        lgs = self.store.meta("fresh_at") or self.store.meta("last_good_sync")
        last = datetime.fromisoformat(lgs) if lgs else applied.applied_at
        snap = self._snap if applied.digest == self._snap.digest else self._load(applied)
        return replace(snap, updated_at=last)

    def _load(self, applied: Applied) -> _Snapshot:
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
            base = sf.PagedFile(path)
            ov = self.store.overlay_path()
            overlay = sf.PagedFile(ov) if ov else None
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

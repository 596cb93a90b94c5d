"""The device's applied credential set: the SQLite store and its status files.

Layout under ``<data_dir>/trust/``::

    store.db                 SQLite: table meta (key → value), table parts (name, sha256, data)
    status/<digest>.sset     the base status set, paged (``statusfile.py``)
    status/overlay-*.sset    the deltas applied since the base, composed (small, paged)
    staging/                 downloads in progress (cleared before each sync)
    apply.lock               one sync at a time (daemon timer, `sentinel sync`)

Apply is all-or-nothing: new status files are written, fsynced and checked under their
own names first, then one SQLite transaction switches version, manifest, small parts and
the status file names.  A reader sees the old bundle or the new one, never a mix; a crash
(SIGKILL, power) before the commit leaves the old bundle in place.  The provider over
this store is ``applied.StoreTrust``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sentinel.credentials.trustlist import TrustList
from sentinel.errors import BundleError, BundleFormatError, BundleHashError, ConfigError
from sentinel.progress import progress_bar
from sentinel.safefs import private_dir, private_file
from sentinel.trust import bundle as bm
from sentinel.trust import statusfile as sf
from sentinel.trust import statusset as ss
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
    def _peek(data_dir: str | Path, key: str) -> str | None:
        """One meta value read without opening the store for writing (None: no store,
        no such value, or unreadable)."""
        db = Path(data_dir) / "trust" / "store.db"
        if not db.exists():
            return None
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            row = con.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        except sqlite3.Error:
            return None
        finally:
            con.close()
        return None if row is None else str(row[0])

    @staticmethod
    def exists(data_dir: str | Path) -> bool:
        """True when a bundle has been applied under ``data_dir``."""
        return BundleStore._peek(data_dir, "version") is not None

    @staticmethod
    def readable(data_dir: str | Path) -> bool:
        """True when a bundle is applied that this release reads (False after an upgrade
        from a release with an older bundle format: sync before serving)."""
        raw = BundleStore._peek(data_dir, "manifest") if BundleStore.exists(data_dir) else None
        if raw is None:
            return False
        try:
            bm.parse_stored(raw.encode())
        except BundleFormatError:
            return False
        return True

    def applied_version(self) -> int | None:
        """The version last applied, whatever its format (the floor for rollbacks)."""
        v = self.meta("version")
        return int(v) if v is not None and v.isdigit() else None

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
        """The applied bundle; None when there is none, or when an older release applied
        it in a format this one does not read (an upgrade): the next sync replaces it,
        never with a version below ``applied_version()``."""
        raw = self.meta("manifest")
        if raw is None:
            return None
        if bm.is_older_format(bm.stored_format(raw.encode())):
            return None
        m = bm.parse_stored(raw.encode())
        return Applied(
            version=m.version,
            digest=m.digest,
            manifest=m,
            applied_at=datetime.fromisoformat(self.meta("applied_at") or _iso(datetime.now(UTC))),
        )

    def held(self) -> dict[str, str]:
        """Part name → sha256 of what the device holds ("status": the raw set's digest,
        only while its files are on disk: a device that lost them fetches the full set)."""
        with self._lock:
            out = dict(self._db.execute("SELECT name, sha256 FROM parts").fetchall())
        digest = self.meta("status_sha256")
        files = [p for p in (self.status_path(), self.overlay_path()) if p is not None]
        if digest and files and all(p.exists() for p in files):
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


def __getattr__(name: str) -> Any:
    """``StoreTrust`` lives in ``sentinel.trust.applied`` (the provider over this store);
    ``from sentinel.trust.store import StoreTrust`` keeps working (PEP 562)."""
    if name == "StoreTrust":
        from sentinel.trust.applied import StoreTrust

        return StoreTrust
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

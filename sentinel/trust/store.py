"""The device's applied credential set: SQLite store + mmapped status file, and its provider.

Layout under ``<data_dir>/trust/``::

    store.db                 SQLite: table meta (key → value), table parts (name, sha256, data)
    status/<sha256>.sset     the applied status set, named by its digest (see statusset.py)
    staging/                 downloads in progress (cleared before each sync)

Apply is all-or-nothing: the new status file is written and checked under its own name
first, then one SQLite transaction switches version, manifest, small parts and the status
file name.  A reader sees the old bundle or the new one, never a mix; a crash before
the commit leaves the old bundle in place.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sentinel.config import TrustConfig
from sentinel.credentials.trustlist import TrustList
from sentinel.errors import BundleError, BundleFormatError, BundleHashError, ConfigError
from sentinel.policy import TrustState
from sentinel.trust import bundle as bm
from sentinel.trust import statusset as ss
from sentinel.trust.provider import StatusEntry, StatusLookup, TrustProvider

log = logging.getLogger(__name__)

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
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "status").mkdir(exist_ok=True)
        self.db_path = self.root / "store.db"
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

    # ---- meta ---------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, **values: str | None) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for k, v in values.items():
                    if v is None:
                        self._db.execute("DELETE FROM meta WHERE key=?", (k,))
                    else:
                        self._db.execute(
                            "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (k, v)
                        )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def data_version(self) -> int:
        with self._lock:
            return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    def current(self) -> Applied | None:
        raw = self.meta("manifest")
        if raw is None:
            return None
        m = bm._parse_payload(json.loads(json.loads(raw)["signed"]), raw.encode())
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
        sf = self.meta("status_file")
        if sf:
            out["status"] = sf.removesuffix(".sset")
        return out

    def part(self, name: str) -> bytes | None:
        with self._lock:
            row = self._db.execute("SELECT data FROM parts WHERE name=?", (name,)).fetchone()
        return bytes(row[0]) if row else None

    def status_path(self) -> Path | None:
        sf = self.meta("status_file")
        return self.root / "status" / sf if sf else None

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
        status_file = self._apply_status(plan, staged)
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
                    "status_file": status_file,
                    "applied_at": _iso(now),
                    "last_good_sync": _iso(now),
                    "last_error": None,
                    **rotate,
                }
                for k, v in values.items():
                    if v is None:
                        self._db.execute("DELETE FROM meta WHERE key=?", (k,))
                    else:
                        self._db.execute(
                            "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (k, v)
                        )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        self._clean_status_files(keep=status_file, also=prev.status_file if prev else "")
        return {
            "version": m.version,
            "previous_version": prev.version if prev else None,
            "manifest_sha256": m.digest,
            "delta": plan.use_delta,
            "source": source,
            "parts": {n: r.sha256 for n, r in sorted(m.parts.items())},
            "status_entries": m.status.count if m.status else 0,
            "status_sha256": m.status.sha256 if m.status else None,
        }

    def _apply_status(self, plan: bm.Plan, staged: Mapping[str, Path]) -> str:
        m = plan.manifest
        if m.status is None:
            return ""
        final = self.root / "status" / f"{m.status.sha256}.sset"
        if final.exists() and self.held().get("status") == m.status.sha256:
            return final.name  # unchanged set
        tmp = final.with_suffix(".tmp")
        if plan.use_delta:
            ref = m.parts["status_delta"]
            raw_delta = self.staging / "status_delta.raw"
            ss.decompress_to(staged["status_delta"], raw_delta, ref.raw_size, ref.raw_sha256)
            cur = self.status_path()
            if cur is None or not cur.exists():
                raise BundleError("delta needs the base status set, which is missing")
            base = ss.StatusFile(cur)
            delta = ss.StatusFile(raw_delta)
            try:
                kid = ss.key_id(m.status.hmac_key)
                if base.key_id != kid or delta.key_id != kid:
                    raise BundleFormatError("status delta uses another status key than its base")
                merged = ss.merge(base.columns(), delta.columns())
                import hashlib

                with tmp.open("wb") as f:
                    merged.write(f, kid)
                    f.flush()
                    os.fsync(f.fileno())
                del merged
                h = hashlib.sha256()
                with tmp.open("rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
                if h.hexdigest() != m.status.sha256:
                    raise BundleHashError("status set after the delta does not match the manifest")
            finally:
                base.close()
                delta.close()
        else:
            ref = m.parts["status"]
            if ref.raw_sha256 != m.status.sha256 or ref.raw_size != m.status.size:
                raise BundleFormatError("status part and status description disagree")
            ss.decompress_to(staged["status"], tmp, ref.raw_size, ref.raw_sha256)
        check = ss.StatusFile(tmp)
        try:
            if check.count != m.status.count or check.kind != ss.KIND_FULL:
                raise BundleFormatError("status set count or kind does not match the manifest")
            if check.key_id != ss.key_id(m.status.hmac_key):
                raise BundleFormatError("status set made with another status key")
        finally:
            check.close()
        os.replace(tmp, final)
        _fsync_dir(final.parent)
        return final.name

    def _clean_status_files(self, keep: str, also: str = "") -> None:
        for p in (self.root / "status").iterdir():
            if p.name != keep:
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
    """StatusLookup over the mmapped status file with the bundle's HMAC key."""

    def __init__(self, file: ss.StatusFile, hmac_key: bytes) -> None:
        self._file = file
        self._key = hmac_key

    def _get(self, identity: bytes) -> StatusEntry | None:
        hit = self._file.get(ss.entry_key(self._key, identity))
        if hit is None:
            return None
        code, until = hit
        return StatusEntry(ss.STATUS_NAMES.get(code, "unknown"), datetime.fromtimestamp(until, UTC))

    def lookup_document(self, doc_type: str, country: str, number: str) -> StatusEntry | None:
        return self._get(ss.normalize_document(doc_type, country, number))

    def lookup_subject(self, subject_id: str) -> StatusEntry | None:
        return self._get(ss.normalize_subject(subject_id))

    def __len__(self) -> int:
        return len(self._file)


@dataclass(slots=True)
class _Snapshot:
    digest: str = ""
    version: int | None = None
    trust: TrustList = field(default_factory=TrustList)
    revoked: frozenset[str] = frozenset()
    parts: dict[str, bytes] = field(default_factory=dict)
    status: _Lookup | None = None
    status_file: ss.StatusFile | None = None
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
        """Reload if another connection committed since the last look (cheap when not)."""
        with self._lock:
            dv = self.store.data_version()
            if dv == self._seen_version:
                return
            self._seen_version = dv
            applied = self.store.current()
            if applied is None:
                return
            lgs = self.store.meta("last_good_sync")
            last = datetime.fromisoformat(lgs) if lgs else applied.applied_at
            if applied.digest != self._snap.digest:
                self._snap = self._load(applied)
            self._snap.updated_at = last

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
        sfile = None
        path = self.store.status_path()
        if m.status is not None and path is not None:
            sfile = ss.StatusFile(path)
            status = _Lookup(sfile, m.status.hmac_key)
        # The old status file is not closed here: a presentation may still be looking it up;
        # its mmap goes with the last reference.
        return _Snapshot(
            digest=applied.digest,
            version=m.version,
            trust=trust,
            revoked=rev,
            parts=parts,
            status=status,
            status_file=sfile,
            expires_at=m.expires_at,
        )

    def trust_list(self) -> TrustList:
        self.refresh()
        if self._snap.version is None and self.fallback is not None:
            return self.fallback.trust_list()
        return self._snap.trust

    def state(self) -> TrustState:
        self.refresh()
        snap = self._snap
        if snap.version is None:
            if self.fallback is not None:
                return self.fallback.state()
            return TrustState(bundle_version="", updated_at=None)
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

    def status(self) -> StatusLookup | None:
        self.refresh()
        if self._snap.version is None and self.fallback is not None:
            return self.fallback.status()
        return self._snap.status

    def part(self, name: str) -> bytes | None:
        self.refresh()
        if self._snap.version is None and self.fallback is not None:
            return self.fallback.part(name)
        return self._snap.parts.get(name)

    @property
    def version(self) -> int | None:
        self.refresh()
        return self._snap.version

    def close(self) -> None:
        with self._lock:
            if self._snap.status_file is not None:
                self._snap.status_file.close()
            self.store.close()

    def __enter__(self) -> StoreTrust:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

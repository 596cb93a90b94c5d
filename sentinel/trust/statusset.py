"""The status set: keyed hashes of normalized document numbers → (status, valid-until).

File layout (``.sset``, little-endian, columnar so the keys are one contiguous,
bisectable array and the value columns compress well on the wire)::

    header   32 bytes  b"SSET" | u8 format (1) | u8 kind (0 full, 1 delta) | 2 pad
                       | u64 count | 16 bytes key id (first 16 bytes of SHA-256(hmac key))
    keys     count × 12 bytes   truncated HMAC-SHA256, sorted ascending, unique
    status   count × 1 byte     0 delete (delta only), 1 green, 2 yellow, 3 red
    until    count × 4 bytes    valid-until, u32 seconds since the Unix epoch (UTC)

17 bytes per entry on disk; on the wire the part is zlib-compressed (the 12 key bytes
are random and do not compress, the value columns mostly do).  Lookups bisect the
mmapped key column: ~24 probes for 10 million entries, no load into memory.

Raw numbers exist only on the authority's side: ``entry_key`` runs there (publisher)
and on the device over a number just read from a document, never stored.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import mmap
import os
import re
import struct
import unicodedata
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import numpy as np

from sentinel.errors import BundleFormatError, BundleHashError

MAGIC = b"SSET"
FORMAT = 1
HEADER = struct.Struct("<4sBBxxQ16s")
HEADER_SIZE = HEADER.size  # 32
KEY_BYTES = 12  # 96 bits: for 10M entries a chance collision is ~1e-14
ENTRY_BYTES = KEY_BYTES + 1 + 4
KIND_FULL, KIND_DELTA = 0, 1

STATUS_CODES = {"green": 1, "yellow": 2, "red": 3}
STATUS_NAMES = {v: k for k, v in STATUS_CODES.items()}
DELETE = 0

_KEY_DTYPE = np.dtype(f"S{KEY_BYTES}")
_UNTIL_DTYPE = np.dtype("<u4")


def key_id(hmac_key: bytes) -> bytes:
    """A public fingerprint of the per-bundle HMAC key (names it in file headers)."""
    return hashlib.sha256(b"sentinel-status-key\x00" + hmac_key).digest()[:16]


_NOT_ALNUM = re.compile(r"[\W_]+")


def _clean(text: str) -> str:
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    return _NOT_ALNUM.sub("", text.upper())


def normalize_document(doc_type: str, country: str, number: str) -> bytes:
    """The hashed identity of an ID document: ``doc|<category>|<country>|<number>``.

    ICAO 9303-3 §4.2.2: the first MRZ character is the document category (P, I, A, C,
    V); the second is the issuer's choice, so only the first counts.  Fillers ``<``,
    spaces and dashes vanish, letters are upper-cased, full-width digits folded (NFKC).
    """
    cat = _clean(doc_type)[:1]
    return f"doc|{cat}|{_clean(country)}|{_clean(number)}".encode()


def normalize_subject(subject_id: str) -> bytes:
    """The hashed identity of a health-code subject: ``subj|<id>`` (a separate namespace)."""
    return ("subj|" + unicodedata.normalize("NFKC", subject_id).strip()).encode()


def entry_key(hmac_key: bytes, identity: bytes) -> bytes:
    """Truncated HMAC-SHA256 of a normalized identity under the bundle's status key."""
    return hmac.digest(hmac_key, identity, "sha256")[:KEY_BYTES]


def to_epoch(t: datetime) -> int:
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return max(0, min(int(t.timestamp()), 0xFFFFFFFF))


@dataclass(frozen=True, slots=True)
class Columns:
    """A status set (or delta) in memory: sorted unique keys and their values."""

    keys: np.ndarray  # S12
    status: np.ndarray  # u1
    until: np.ndarray  # <u4
    kind: int = KIND_FULL

    def __len__(self) -> int:
        return int(self.keys.shape[0])

    @classmethod
    def empty(cls, kind: int = KIND_FULL) -> Columns:
        return cls(np.empty(0, _KEY_DTYPE), np.empty(0, np.uint8), np.empty(0, _UNTIL_DTYPE), kind)

    @classmethod
    def build(
        cls,
        keys: Iterable[bytes],
        status: Iterable[int],
        until: Iterable[int],
        kind: int = KIND_FULL,
    ) -> Columns:
        """Sort by key; refuse duplicate keys (two records for the same document)."""
        k = np.array(list(keys), dtype=_KEY_DTYPE)
        s = np.fromiter(status, dtype=np.uint8)
        u = np.fromiter(until, dtype=_UNTIL_DTYPE)
        return cls.from_arrays(k, s, u, kind)

    @classmethod
    def from_arrays(cls, k: np.ndarray, s: np.ndarray, u: np.ndarray, kind: int) -> Columns:
        if not (len(k) == len(s) == len(u)):
            raise BundleFormatError("status columns differ in length")
        order = np.argsort(k, kind="stable")
        k, s, u = k[order], s[order], u[order]
        if len(k) > 1 and bool(np.any(k[1:] == k[:-1])):
            raise BundleFormatError("status records: the same document appears twice")
        return cls(k, s, u, kind)

    def write(self, f: IO[bytes], hmac_key_id: bytes) -> None:
        f.write(HEADER.pack(MAGIC, FORMAT, self.kind, len(self), hmac_key_id))
        f.write(np.ascontiguousarray(self.keys).tobytes())
        f.write(np.ascontiguousarray(self.status, dtype=np.uint8).tobytes())
        f.write(np.ascontiguousarray(self.until, dtype=_UNTIL_DTYPE).tobytes())

    def to_bytes(self, hmac_key_id: bytes) -> bytes:
        import io

        buf = io.BytesIO()
        self.write(buf, hmac_key_id)
        return buf.getvalue()


def parse_header(data: bytes | memoryview, size: int) -> tuple[int, int, bytes]:
    """(kind, count, key id) of a status file of ``size`` bytes; raise if inconsistent."""
    if size < HEADER_SIZE:
        raise BundleFormatError("status set: truncated header")
    magic, fmt, kind, count, kid = HEADER.unpack(bytes(data[:HEADER_SIZE]))
    if magic != MAGIC or fmt != FORMAT or kind not in (KIND_FULL, KIND_DELTA):
        raise BundleFormatError("status set: not a status set file (magic/format)")
    if size != HEADER_SIZE + count * ENTRY_BYTES:
        raise BundleFormatError(f"status set: {size} bytes do not hold {count} entries")
    return kind, count, kid


def columns_from_bytes(data: bytes | memoryview | np.ndarray, size: int) -> Columns:
    """Columns viewing ``data`` (bytes or an mmap); no copy."""
    kind, n, _kid = parse_header(data, size)
    buf = np.frombuffer(data, dtype=np.uint8, count=size)
    o = HEADER_SIZE
    keys = buf[o : o + n * KEY_BYTES].view(_KEY_DTYPE)
    o += n * KEY_BYTES
    status = buf[o : o + n]
    o += n
    until = buf[o : o + 4 * n].view(_UNTIL_DTYPE)
    return Columns(keys, status, until, kind)


def diff(old: Columns, new: Columns) -> Columns:
    """The delta turning ``old`` into ``new``: upserts plus deletions (status 0)."""
    pos = np.searchsorted(old.keys, new.keys)
    inside = pos < len(old)
    same = np.zeros(len(new), dtype=bool)
    if len(old):
        p = np.minimum(pos, len(old) - 1)
        same = (
            inside
            & (old.keys[p] == new.keys)
            & (old.status[p] == new.status)
            & (old.until[p] == new.until)
        )
    changed = ~same
    gone_pos = np.searchsorted(new.keys, old.keys)
    gone = np.ones(len(old), dtype=bool)
    if len(new):
        gp = np.minimum(gone_pos, len(new) - 1)
        gone = ~((gone_pos < len(new)) & (new.keys[gp] == old.keys))
    k = np.concatenate([new.keys[changed], old.keys[gone]])
    s = np.concatenate([new.status[changed], np.zeros(int(gone.sum()), np.uint8)])
    u = np.concatenate([new.until[changed], np.zeros(int(gone.sum()), _UNTIL_DTYPE)])
    return Columns.from_arrays(k, s, u, KIND_DELTA)


def merge(old: Columns, delta: Columns, *, strict: bool = True) -> Columns:
    """Apply a delta: upserts replace or insert, status 0 deletes.  Pure, vectorized.

    ``strict``: a deletion of an entry ``old`` does not hold is an error (it is not when
    compacting composed deltas, where an entry may come and go between two bases).
    """
    return _merge(old, delta, apply_deletes=True, strict=strict)


def compose(overlay: Columns, delta: Columns) -> Columns:
    """Two deltas as one: entries of ``delta`` win, deletion markers are kept."""
    return _merge(overlay, delta, apply_deletes=False, strict=False)


def _merge(old: Columns, delta: Columns, *, apply_deletes: bool, strict: bool) -> Columns:
    if delta.kind != KIND_DELTA:
        raise BundleFormatError("status delta: part is not a delta")
    n = len(old)
    pos = np.searchsorted(old.keys, delta.keys)
    found = np.zeros(len(delta), dtype=bool)
    if n:
        p = np.minimum(pos, n - 1)
        found = (pos < n) & (old.keys[p] == delta.keys)
    dele = (delta.status == DELETE) if apply_deletes else np.zeros(len(delta), dtype=bool)
    if strict and bool(np.any(dele & ~found)):
        raise BundleFormatError("status delta deletes an entry the base does not hold")
    status = np.array(old.status, dtype=np.uint8, copy=True)
    until = np.array(old.until, dtype=_UNTIL_DTYPE, copy=True)
    upd = found & ~dele
    status[pos[upd]] = delta.status[upd]
    until[pos[upd]] = delta.until[upd]
    keep = np.ones(n, dtype=bool)
    keep[pos[found & dele]] = False
    ins = ~found & ~dele
    # positions of the insertions in the array after deletions
    deleted_before = np.concatenate([[0], np.cumsum(~keep)])
    ins_pos = pos[ins] - deleted_before[pos[ins]]
    keys = np.insert(old.keys[keep], ins_pos, delta.keys[ins])
    status = np.insert(status[keep], ins_pos, delta.status[ins])
    until = np.insert(until[keep], ins_pos, delta.until[ins])
    return Columns(keys, status, until, KIND_FULL if apply_deletes else KIND_DELTA)


def count_after(base: Columns, overlay: Columns) -> int:
    """How many entries ``base`` with ``overlay`` applied holds (without merging)."""
    n = len(base)
    found = np.zeros(len(overlay), dtype=bool)
    if n:
        pos = np.searchsorted(base.keys, overlay.keys)
        found = (pos < n) & (base.keys[np.minimum(pos, n - 1)] == overlay.keys)
    dele = overlay.status == DELETE
    return n + int(np.sum(~found & ~dele)) - int(np.sum(found & dele))


def compress_to(src: Path, dest: Path, level: int = 6) -> None:
    """zlib-compress a status file for the wire (the publisher's side)."""
    comp = zlib.compressobj(level)
    with src.open("rb") as fi, dest.open("wb") as fo:
        for chunk in iter(lambda: fi.read(1 << 20), b""):
            fo.write(comp.compress(chunk))
        fo.write(comp.flush())


def decompress_to(src: Path, dest: Path, raw_size: int, raw_sha256: str) -> None:
    """Inflate a downloaded part into ``dest`` with a hard cap; check the raw digest."""
    d = zlib.decompressobj()
    h = hashlib.sha256()
    total = 0
    with src.open("rb") as fi, dest.open("wb") as fo:
        for chunk in iter(lambda: fi.read(1 << 20), b""):
            out = d.decompress(chunk, raw_size + 1 - total)
            while True:
                total += len(out)
                if total > raw_size:
                    raise BundleFormatError("status part inflates beyond its declared size")
                h.update(out)
                fo.write(out)
                if not d.unconsumed_tail:
                    break
                out = d.decompress(d.unconsumed_tail, raw_size + 1 - total)
        tail = d.flush()
        total += len(tail)
        if total > raw_size:
            raise BundleFormatError("status part inflates beyond its declared size")
        h.update(tail)
        fo.write(tail)
        fo.flush()
        os.fsync(fo.fileno())
    if not d.eof or total != raw_size:
        raise BundleFormatError("status part is truncated")
    if h.hexdigest() != raw_sha256:
        raise BundleHashError("status set digest does not match the manifest")


class StatusFile:
    """A read-only, mmapped status set; lookups bisect the key column."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        size = self.path.stat().st_size
        self._mm: mmap.mmap | None = None
        if size:
            with self.path.open("rb") as f:
                self._mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        data: bytes | mmap.mmap = self._mm if self._mm is not None else b""
        self.kind, self.count, self.key_id = parse_header(data, size)
        self._data = data

    def __len__(self) -> int:
        return self.count

    def columns(self) -> Columns:
        return columns_from_bytes(self._data, HEADER_SIZE + self.count * ENTRY_BYTES)

    def get(self, key: bytes) -> tuple[int, int] | None:
        """(status code, valid-until epoch seconds) for a 12-byte key, or None."""
        mm = self._data
        lo, hi = 0, self.count
        base = HEADER_SIZE
        while lo < hi:
            mid = (lo + hi) // 2
            o = base + mid * KEY_BYTES
            probe = mm[o : o + KEY_BYTES]
            if probe < key:
                lo = mid + 1
            else:
                hi = mid
        if lo < self.count:
            o = base + lo * KEY_BYTES
            if mm[o : o + KEY_BYTES] == key:
                s_off = base + self.count * KEY_BYTES + lo
                u_off = base + self.count * (KEY_BYTES + 1) + 4 * lo
                return mm[s_off], struct.unpack_from("<I", mm, u_off)[0]
        return None

    def close(self) -> None:
        if self._mm is not None:
            # a numpy view may still be alive; then the GC unmaps it
            with contextlib.suppress(BufferError):
                self._mm.close()
            self._mm = None

    def __iter__(self) -> Iterator[tuple[bytes, int, int]]:
        c = self.columns()
        for i in range(len(c)):
            yield c.keys[i : i + 1].tobytes(), int(c.status[i]), int(c.until[i])

"""The device's status files: rows in 4 KiB pages, a page index in memory, one read a lookup.

Layout (``<digest>.sset`` under ``<data_dir>/trust/status/``, little-endian)::

    page 0     header: b"SROW" | u8 format (1) | u8 kind | 2 pad | u64 count | 16 bytes
               key id | u64 pages | u64 fence offset | 32 bytes set digest (SHA-256 of
               the rows, the manifest's status.sha256) | zero padding to 4096
    page 1..P  240 rows each (12-byte tag, status byte, u32 until: 17 bytes), sorted,
               16 bytes of zero padding
    fences     P × 12 bytes: the first tag of each page

A lookup finds the page by bisecting the fences (≈4 MB at 80 M entries, read once at
open) and reads that one page with ``pread``: one 4 KiB read from the SD card when the
page cache is cold, a few microseconds when it is warm.  The overlay (a delta's entries,
looked up first) also keeps the first 4 bytes of each tag in memory: a tag it does not
hold costs no read there, so a cold lookup is one read whether or not an overlay exists.
Writers stream sorted chunks in and compute the set digest as they go, so a full apply
or a compaction runs in bounded memory whatever the size of the set.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from sentinel.errors import BundleFormatError
from sentinel.trust import statusset as ss

PAGE = 4096
PER_PAGE = PAGE // ss.ENTRY_BYTES  # 240
MAGIC = b"SROW"
FORMAT = 1
HEADER = struct.Struct("<4sBBxxQ16sQQ32s")
CHUNK = 1 << 18  # rows per streamed chunk (4.5 MB)
PREFIX_FILTER_MAX = 8_000_000  # entries: at most 32 MB of 4-byte tag prefixes in memory


class PagedWriter:
    """Write sorted, unique rows into a paged status file; checks order as it goes."""

    def __init__(self, path: Path, kind: int, key_id: bytes) -> None:
        self.path = path
        self.kind = kind
        self.key_id = key_id
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # data file: 0600
        self._f = os.fdopen(fd, "wb")
        self._f.write(b"\0" * PAGE)
        self._pending = np.empty(0, dtype=ss.ROW_DTYPE)
        self._fences: list[np.ndarray] = []
        self._hash = hashlib.sha256()
        self._last: bytes | None = None
        self.count = 0
        self.pages = 0

    def add(self, cols: ss.Columns) -> None:
        if not len(cols):
            return
        k = cols.keys
        first = k[:1].tobytes()
        if (self._last is not None and first <= self._last) or (
            len(k) > 1 and bool(np.any(k[1:] <= k[:-1]))
        ):
            raise BundleFormatError("status set: entries are not sorted and unique")
        self._last = k[-1:].tobytes()
        rows = cols.rows()
        self._hash.update(rows.tobytes())
        self.count += len(rows)
        if len(self._pending):
            rows = np.concatenate([self._pending, rows])
        full = len(rows) // PER_PAGE
        if full:
            self._write_pages(rows[: full * PER_PAGE])
        self._pending = rows[full * PER_PAGE :].copy()

    def _write_pages(self, rows: np.ndarray) -> None:
        n = len(rows) // PER_PAGE if len(rows) % PER_PAGE == 0 else len(rows) // PER_PAGE + 1
        buf = np.zeros((n, PAGE), dtype=np.uint8)
        flat = np.zeros(n * PER_PAGE, dtype=ss.ROW_DTYPE)
        flat[: len(rows)] = rows
        buf[:, : PER_PAGE * ss.ENTRY_BYTES] = flat.view(np.uint8).reshape(n, -1)
        self._f.write(buf.tobytes())
        self._fences.append(rows["k"][::PER_PAGE].copy())
        self.pages += n

    def finish(self) -> str:
        """Write the last page, the fences and the header; fsync; return the set digest."""
        if len(self._pending):
            self._write_pages(self._pending)
        fence_off = PAGE * (1 + self.pages)
        fences = np.concatenate(self._fences) if self._fences else np.empty(0, ss.KEY_DTYPE)
        self._f.write(fences.tobytes())
        digest = self._hash.digest()
        self._f.seek(0)
        self._f.write(
            HEADER.pack(
                MAGIC, FORMAT, self.kind, self.count, self.key_id, self.pages, fence_off, digest
            )
        )
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        return digest.hex()

    def abort(self) -> None:
        self._f.close()
        self.path.unlink(missing_ok=True)


class PagedFile:
    """A read-only paged status file: lookups by ``pread``, streaming reads by chunks."""

    def __init__(self, path: str | Path, *, prefix_filter: bool = False) -> None:
        """``prefix_filter``: keep the first 4 bytes of every tag in memory (sorted), so
        that a lookup of a tag the file does not hold reads no page at all, but for the
        rare tag sharing those 4 bytes (an overlay: looked up before the base on every
        lookup, and small; up to ``PREFIX_FILTER_MAX`` entries)."""
        self.path = Path(path)
        self._fd = os.open(self.path, os.O_RDONLY)
        try:
            # lookups read one page each: no readahead of the pages around it
            os.posix_fadvise(self._fd, 0, 0, os.POSIX_FADV_RANDOM)
            size = os.fstat(self._fd).st_size
            head = os.pread(self._fd, HEADER.size, 0)
            if len(head) < HEADER.size:
                raise BundleFormatError("status file: truncated header")
            magic, fmt, kind, count, kid, pages, fence_off, digest = HEADER.unpack(head)
            want_pages = -(-count // PER_PAGE)
            if magic != MAGIC or fmt != FORMAT or kind not in (ss.KIND_FULL, ss.KIND_DELTA):
                raise BundleFormatError("status file: not a paged status file")
            if pages != want_pages or fence_off != PAGE * (1 + pages):
                raise BundleFormatError("status file: header does not match its entry count")
            if size != fence_off + pages * ss.KEY_BYTES:
                raise BundleFormatError("status file: size does not match its header")
            raw = os.pread(self._fd, pages * ss.KEY_BYTES, fence_off)
            self.fences = np.frombuffer(raw, dtype=ss.KEY_DTYPE)
        except BaseException:
            os.close(self._fd)
            raise
        self.kind, self.count, self.key_id, self.pages = kind, count, kid, pages
        self.digest = digest.hex()
        self.prefixes: np.ndarray | None = None
        if prefix_filter and count <= PREFIX_FILTER_MAX:
            try:
                self.prefixes = self._prefixes()
            except BaseException:
                self.close()
                raise

    def _prefixes(self) -> np.ndarray:
        """The big-endian u32 of each tag's first 4 bytes: sorted, as the tags are."""
        out = np.empty(self.count, np.uint32)
        o = 0
        for c in self.chunks():
            raw = np.ascontiguousarray(c.keys).view(np.uint8).reshape(-1, ss.KEY_BYTES)
            out[o : o + len(c)] = raw[:, :4].copy().view(">u4").ravel()
            o += len(c)
        return out

    def __len__(self) -> int:
        return self.count

    def _page(self, i: int) -> np.ndarray:
        n = min(PER_PAGE, self.count - i * PER_PAGE)
        raw = os.pread(self._fd, n * ss.ENTRY_BYTES, PAGE * (1 + i))
        return np.frombuffer(raw, dtype=ss.ROW_DTYPE)

    def get(self, key: bytes) -> tuple[int, int] | None:
        """(status byte, valid-until epoch seconds) for a 12-byte tag, or None."""
        if not self.pages:
            return None
        if self.prefixes is not None:
            # a probe of the array's own dtype: a Python int made numpy cast all of the
            # prefixes to int64 on every lookup (0.4 ms at 800 k entries, issue #21)
            first = np.uint32(int.from_bytes(key[:4], "big"))
            i = int(self.prefixes.searchsorted(first))
            if i == len(self.prefixes) or int(self.prefixes[i]) != first:
                return None  # no tag of this file starts so: no page to read
        probe = np.array(key, dtype=ss.KEY_DTYPE)
        p = int(np.searchsorted(self.fences, probe, side="right")) - 1
        if p < 0:
            return None
        rows = self._page(p)
        i = int(np.searchsorted(rows["k"], probe))
        if i < len(rows) and rows["k"][i : i + 1].tobytes() == key:
            return int(rows["s"][i]), int(rows["u"][i])
        return None

    def chunks(self, pages_per_chunk: int = CHUNK // PER_PAGE) -> Iterator[ss.Columns]:
        """The entries in order, a bounded chunk at a time."""
        for first in range(0, self.pages, pages_per_chunk):
            last = min(self.pages, first + pages_per_chunk)
            raw = np.frombuffer(
                os.pread(self._fd, (last - first) * PAGE, PAGE * (1 + first)), dtype=np.uint8
            )
            pages = raw.reshape(last - first, PAGE)[:, : PER_PAGE * ss.ENTRY_BYTES]
            rows = np.ascontiguousarray(pages).view(ss.ROW_DTYPE).ravel()
            rows = rows[: min(len(rows), self.count - first * PER_PAGE)]
            yield ss.Columns(rows["k"].copy(), rows["s"].copy(), rows["u"].copy(), self.kind)

    def columns(self) -> ss.Columns:
        """All entries in memory (small files only: overlays)."""
        parts = list(self.chunks())
        if not parts:
            return ss.Columns.empty(self.kind)
        return ss.Columns(
            np.concatenate([c.keys for c in parts]),
            np.concatenate([c.status for c in parts]),
            np.concatenate([c.until for c in parts]),
            self.kind,
        )

    def evict(self) -> None:
        """Drop this file's pages from the page cache (cold-lookup measurements)."""
        os.posix_fadvise(self._fd, 0, 0, os.POSIX_FADV_DONTNEED)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> PagedFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_columns(path: Path, cols: ss.Columns, key_id: bytes) -> str:
    """A small in-memory set or overlay as a paged file; returns its set digest."""
    w = PagedWriter(path, cols.kind, key_id)
    try:
        for i in range(0, len(cols), CHUNK):
            w.add(ss.Columns(*(a[i : i + CHUNK] for a in (cols.keys, cols.status, cols.until))))
        return w.finish()
    except BaseException:
        w.abort()
        raise


def convert_wire(src: ss.WireFile, dest: Path, progress: object = None) -> str:
    """A full columnar set (an inflated part) as a paged file, in chunks; its set digest."""
    w = PagedWriter(dest, ss.KIND_FULL, src.key_id)
    try:
        for i in range(0, src.count, CHUNK):
            c = src.chunk(i, min(src.count, i + CHUNK))
            w.add(c)
            if progress is not None:
                progress.update(len(c))  # type: ignore[attr-defined]
        return w.finish()
    except BaseException:
        w.abort()
        raise


def merge_into(base: PagedFile, overlay: ss.Columns, dest: Path, progress: object = None) -> str:
    """``base`` with ``overlay`` (a delta relative to it) applied, streamed into ``dest``."""
    w = PagedWriter(dest, ss.KIND_FULL, base.key_id)
    try:
        o = 0
        chunks = base.chunks()
        cur = next(chunks, None)
        while cur is not None:
            nxt = next(chunks, None)
            if nxt is None:
                stop = len(overlay)
            else:
                bound = nxt.keys[:1]
                stop = int(np.searchsorted(overlay.keys, bound)[0])
            piece = ss.Columns(
                overlay.keys[o:stop], overlay.status[o:stop], overlay.until[o:stop], ss.KIND_DELTA
            )
            w.add(ss.apply_chunk(cur, piece))
            if progress is not None:
                progress.update(len(cur))  # type: ignore[attr-defined]
            o, cur = stop, nxt
        if base.count == 0 and len(overlay):
            w.add(ss.apply_chunk(ss.Columns.empty(), overlay))
        return w.finish()
    except BaseException:
        w.abort()
        raise

"""The authority's status set: its secret key, the lookup tags (cached), the sorted set.

State (private to the authority, never in the published site; default ``<site>.authority/``
beside the site directory, mode 0700)::

    status_key.json     {"key": "<base64>", "key_id": "<hex>", "kdf": {...}}   (0600)
    tags-<key id>.npy   tag cache: HMAC(cache key, identity)[:16] → tag, sorted  (0600)

Tags under a memory-hard KDF (Argon2id, ``statusset.DEFAULT_KDF``) cost ~16 ms each on
the build box: computed once per identity when it is first listed and cached, so a
build pays one batch CBC-MAC per row (the cache index) and a KDF per new identity only.
Rotating the status key (or the KDF) starts a new cache: every identity is tagged again
(docs/bundles.md: ingestion cost).
"""

from __future__ import annotations

import base64
import hmac
import json
import multiprocessing
import os
import secrets
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sentinel.authority import inputs
from sentinel.authority.inputs import Chunk
from sentinel.authority.setbuild import Buckets
from sentinel.errors import ConfigError
from sentinel.progress import progress_bar
from sentinel.trust import statusset as ss

STATUS_KEY_BYTES = 32
CACHE_DTYPE = np.dtype([("i", "S16"), ("t", ss.KEY_DTYPE)])
_BATCH = 1 << 20


def _private_dir(d: Path) -> None:
    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o700)


def _write_private(path: Path, data: bytes) -> None:
    _private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


@dataclass(frozen=True, slots=True)
class StatusKey:
    key: bytes
    kdf: Mapping[str, Any]

    @property
    def key_id(self) -> str:
        return ss.key_id(self.key).hex()

    @property
    def cache_key(self) -> bytes:
        return hmac.digest(self.key, b"sentinel tag cache index", "sha256")


def load_or_create_key(
    state: Path, *, rotate: bool = False, kdf: Mapping[str, Any] | None = None
) -> tuple[StatusKey, bool]:
    """The lineage's status key (a new one on ``rotate``, a first build, or a KDF change);
    and whether it is new."""
    p = state / "status_key.json"
    want = ss.check_kdf(dict(kdf)) if kdf is not None else None
    if p.exists() and not rotate:
        try:
            doc = json.loads(p.read_text())
            old = StatusKey(base64.b64decode(doc["key"]), ss.check_kdf(doc["kdf"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{p}: unreadable status key: {exc}") from None
        if want is None or dict(old.kdf) == want:
            return old, False
    sk = StatusKey(secrets.token_bytes(STATUS_KEY_BYTES), want or dict(ss.DEFAULT_KDF))
    doc = {"key": base64.b64encode(sk.key).decode(), "key_id": sk.key_id, "kdf": dict(sk.kdf)}
    _write_private(p, json.dumps(doc, indent=1).encode())
    return sk, True


def rows_to_chunks(rows: Iterable[tuple[bytes, int, int]]) -> Iterator[Chunk]:
    """(identity, code, until) rows (records, small inputs) as chunks."""
    idents: list[bytes] = []
    codes: list[int] = []
    until: list[int] = []
    for ident, code, vu in rows:
        idents.append(ident)
        codes.append(code)
        until.append(vu)
        if len(idents) >= _BATCH:
            yield Chunk.of(idents, codes, until)
            idents, codes, until = [], [], []
    if idents:
        yield Chunk.of(idents, codes, until)


def _macs(key: bytes, chunk: Chunk, size: int) -> np.ndarray:
    """``statusset.mac(key, identity)[:size]`` of every identity of the chunk, as S<size>."""
    if not len(chunk):
        return np.empty(0, dtype=f"S{size}")
    c = ss.mac_many(key, chunk.mac_input())
    return np.ascontiguousarray(c[:, :size]).view(f"S{size}").ravel()


def _kdf_batch(args: tuple[bytes, dict[str, Any], list[bytes]]) -> bytes:
    key, kdf, idents = args
    return b"".join(ss.tag(key, i, kdf) for i in idents)


class TagCache:
    """The sorted (index → tag) cache of one status key, in memory while a build runs."""

    def __init__(self, state: Path, sk: StatusKey) -> None:
        self.path = state / f"tags-{sk.key_id}.npy"
        self.sk = sk
        self._new: list[np.ndarray] = []
        try:
            self.table = np.load(self.path)
        except FileNotFoundError:
            self.table = np.empty(0, CACHE_DTYPE)
        if self.table.dtype != CACHE_DTYPE:
            raise ConfigError(f"{self.path}: not a tag cache")

    def tags(self, chunk: Chunk, idx: np.ndarray, workers: int) -> tuple[np.ndarray, int]:
        """Tags of the chunk's identities, by their cache index ``idx`` (new ones
        computed and remembered); and how many were new."""
        pos = np.searchsorted(self.table["i"], idx)
        p = np.minimum(pos, max(len(self.table) - 1, 0))
        hit = (
            (pos < len(self.table)) & (self.table["i"][p] == idx)
            if len(self.table)
            else (np.zeros(len(idx), dtype=bool))
        )
        tags = np.empty(len(idx), dtype=ss.KEY_DTYPE)
        if len(self.table):
            tags[hit] = self.table["t"][p[hit]]
        miss = np.flatnonzero(~hit)
        if len(miss):
            idents = [chunk.identity(int(i)) for i in miss]
            tags[miss] = np.frombuffer(self._derive(idents, workers), dtype=ss.KEY_DTYPE)
            new = np.empty(len(miss), CACHE_DTYPE)
            new["i"], new["t"] = idx[miss], tags[miss]
            self._new.append(new)
        return tags, len(miss)

    def _derive(self, idents: list[bytes], workers: int) -> bytes:
        kdf = dict(self.sk.kdf)
        step = 256
        batches = [idents[i : i + step] for i in range(0, len(idents), step)]
        out: list[bytes] = []
        with progress_bar(len(idents), f"tag {len(idents):,} new identities", "tags") as bar:
            if workers > 1 and len(batches) > 1:
                with ProcessPoolExecutor(workers) as pool:
                    jobs = [(self.sk.key, kdf, b) for b in batches]
                    for b, r in zip(batches, pool.map(_kdf_batch, jobs), strict=True):
                        out.append(r)
                        bar.update(len(b))
            else:
                for b in batches:
                    out.append(_kdf_batch((self.sk.key, kdf, b)))
                    bar.update(len(b))
        return b"".join(out)

    def save(self) -> None:
        if not self._new:
            return
        table = np.concatenate([self.table, *self._new])
        table = table[np.argsort(table["i"], kind="stable")]
        keep = np.ones(len(table), dtype=bool)
        keep[1:] = table["i"][1:] != table["i"][:-1]
        self.table, self._new = table[keep], []
        _private_dir(self.path.parent)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            np.save(f, self.table, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


@dataclass(frozen=True, slots=True)
class Built:
    columns: ss.Columns
    new_tags: int  # identities tagged by the KDF in this build (not from the cache)


def _mac_key(sk: StatusKey) -> tuple[bytes, int]:
    """What a row's CBC-MAC is for: its tag (``aes-cbc-mac``), or its tag-cache index."""
    if sk.kdf["alg"] == "aes-cbc-mac":
        return sk.key, ss.KEY_BYTES
    return sk.cache_key, 16


_UNTIL: dict[str, int] = {}  # a block worker's valid-until cache (one per process)


def _tag_block(job: tuple[Path, bytes, Any, int, bytes, int, bool]) -> tuple[Chunk, np.ndarray]:
    """Parse one CSV block and CBC-MAC its identities (in a worker process or not)."""
    p, buf, layout, line0, key, size, keep = job
    chunk = inputs.parse_block(p, buf, layout, line0, _UNTIL)
    macs = _macs(key, chunk, size)
    if not keep:  # the tags are all the parent needs: do not send the messages back
        chunk = Chunk(None, None, chunk.lens, chunk.status, chunk.until)
    return chunk, macs


def tagged_csv(
    path: str | Path, key: bytes, size: int, *, workers: int = 1, bar: Any = None, keep: bool
) -> Iterator[tuple[Chunk, np.ndarray]]:
    """(chunk, CBC-MAC of each identity) of a status CSV, in file order; parsed and
    MACed by ``workers`` processes (a few blocks in flight) when more than one."""
    p = Path(path)
    layout, blocks = inputs.status_blocks(p, bar)
    jobs = ((p, buf, layout, line0, key, size, keep) for buf, line0 in blocks)
    if workers <= 1:
        yield from map(_tag_block, jobs)
        return
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        pending: deque[Future[tuple[Chunk, np.ndarray]]] = deque()
        for job in jobs:
            pending.append(pool.submit(_tag_block, job))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def build_columns(
    chunks: Iterable[Chunk], sk: StatusKey, state: Path, *, workers: int = 1
) -> Built:
    """The sorted status set of all rows: tags (cache first), status, until."""
    key, size = _mac_key(sk)
    return _build(((c, _macs(key, c, size)) for c in chunks), sk, state, workers)


def build_columns_csv(
    path: str | Path, sk: StatusKey, state: Path, *, workers: int = 1, bar: Any = None
) -> Built:
    """``build_columns`` of a status CSV, its blocks parsed by ``workers`` processes."""
    key, size = _mac_key(sk)
    cheap = sk.kdf["alg"] == "aes-cbc-mac"
    pairs = tagged_csv(path, key, size, workers=workers, bar=bar, keep=not cheap)
    return _build(pairs, sk, state, workers)


def _build(
    pairs: Iterable[tuple[Chunk, np.ndarray]], sk: StatusKey, state: Path, workers: int
) -> Built:
    cheap = sk.kdf["alg"] == "aes-cbc-mac"
    cache = None if cheap else TagCache(state, sk)
    rows = Buckets()
    new = 0
    for chunk, macs in pairs:
        if cache is None:
            t = macs
            new += len(chunk)
        else:
            t, misses = cache.tags(chunk, macs, workers)
            new += misses
        rows.add(t, chunk.status, chunk.until)
    if cache is not None:
        cache.save()
    return Built(rows.finish(), new)

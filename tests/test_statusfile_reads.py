"""A status lookup reads one page: the overlay's in-memory tag prefixes spare it a read
of the overlay for every tag the overlay does not hold (docs/bundles.md, Files)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from sentinel.authority.publish import Inputs, StatusRecord, generate_root_key, publish
from sentinel.authority.testing import sync_dir, test_devices
from sentinel.trust import statusfile as sf
from sentinel.trust import statusset as ss
from sentinel.trust.store import StoreTrust

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def _cols(n: int, seed: int, kind: int = ss.KIND_FULL) -> ss.Columns:
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, 256, (n, ss.KEY_BYTES), dtype=np.uint8).view(ss.KEY_DTYPE).ravel()
    status = rng.integers(1, 4, n, dtype=np.uint8)
    until = rng.integers(0, 2**32, n, dtype=np.uint64).astype(ss.UNTIL_DTYPE)
    return ss.Columns.from_arrays(keys, status, until, kind)


def test_prefix_filter_answers_as_the_pages_do(tmp_path: Path) -> None:
    cols = _cols(5000, 1)
    sf.write_columns(tmp_path / "f.sset", cols, b"k" * 16)
    rng = np.random.default_rng(2)
    probes = [bytes(k) for k in cols.keys[::7]]
    probes += [bytes(rng.integers(0, 256, 12, dtype=np.uint8)) for _ in range(500)]
    probes += [bytes(k)[:4] + bytes(8) for k in cols.keys[::11]]  # same first 4 bytes only
    path = tmp_path / "f.sset"
    with sf.PagedFile(path) as plain, sf.PagedFile(path, prefix_filter=True) as filtered:
        assert filtered.prefixes is not None and len(filtered.prefixes) == 5000
        assert [filtered.get(p) for p in probes] == [plain.get(p) for p in probes]


def _records(n: int, changed: int = 0) -> list[StatusRecord]:
    until = NOW + timedelta(days=30)
    return [
        StatusRecord("red" if i < changed else "green", until, "P", "XXA", f"N{i:06d}")
        for i in range(n)
    ]


def test_a_cold_lookup_reads_one_page_with_an_overlay(tmp_path: Path, monkeypatch) -> None:
    site, data = tmp_path / "site", tmp_path / "data"
    key = generate_root_key()
    for version, recs in ((1, _records(3000)), (2, _records(3000, changed=30))):
        publish(site, Inputs(status=recs), [key], now=NOW, version=version,
                devices=test_devices(site), kdf=ss.CHEAP_KDF)  # fmt: skip
        sync_dir(data, site, key.public_key(), now=NOW)
    reads: list[int] = []
    pread = os.pread

    def counted(fd: int, n: int, offset: int) -> bytes:
        reads.append(fd)
        return pread(fd, n, offset)

    with StoreTrust(data) as trust:
        status = trust.status()
        files = trust._snap.status_files
        assert status is not None and len(files) == 2  # the base and the delta's overlay
        base, overlay = files
        monkeypatch.setattr(os, "pread", counted)
        e = status.lookup_document("P", "XXA", "N002000")  # in the base only
        assert e is not None and e.status == "green"
        assert reads == [base._fd]
        reads.clear()
        e = status.lookup_document("P", "XXA", "N000007")  # changed by the delta
        assert e is not None and e.status == "red"
        assert reads == [overlay._fd]
        reads.clear()
        assert status.lookup_document("P", "XXA", "N999999") is None
        assert len(reads) <= 1 and overlay._fd not in reads


def _raw(keys: np.ndarray) -> list[bytes]:
    """Each 12-byte tag as bytes (``bytes(np.bytes_)`` would drop trailing NULs)."""
    return [r.tobytes() for r in np.ascontiguousarray(keys).view(np.uint8).reshape(-1, 12)]


def test_lookups_after_a_delta_answer_as_the_merged_set(tmp_path: Path) -> None:
    """Base + overlay (several pages each) answer every tag as the set with the delta
    merged in: revoked by the delta, un-revoked by it, deleted, inserted, untouched (base
    only), absent, and absent but sharing an overlay tag's first 4 bytes."""
    from sentinel.trust.applied import _Lookup

    old = _cols(6000, 3)
    red, green = np.uint8(ss.STATUS_CODES["red"]), np.uint8(ss.STATUS_CODES["green"])
    status = old.status.copy()
    revoked = np.flatnonzero(status != red)[:400]  # green/yellow -> red
    unrevoked = np.flatnonzero(status == red)[:400]  # red -> green
    status[revoked], status[unrevoked] = red, green
    until = old.until.copy()
    until[revoked[:50]] += 1  # a new valid-until as well
    gone = np.zeros(len(old), dtype=bool)
    gone[np.flatnonzero(status == old.status)[:300]] = True  # deleted, not changed
    new_only = _cols(500, 4)
    new = ss.Columns.from_arrays(
        np.concatenate([old.keys[~gone], new_only.keys]),
        np.concatenate([status[~gone], new_only.status]),
        np.concatenate([until[~gone], new_only.until]),
        ss.KIND_FULL,
    )
    overlay = ss.compose(ss.Columns.empty(ss.KIND_DELTA), ss.diff(old, new))
    assert len(overlay) == 400 + 400 + 300 + 500 and len(overlay) > 4 * sf.PER_PAGE
    sf.write_columns(tmp_path / "base.sset", old, b"k" * 16)
    sf.write_columns(tmp_path / "ov.sset", overlay, b"k" * 16)
    merged = {
        k: (int(s), int(u)) for k, s, u in zip(_raw(new.keys), new.status, new.until, strict=True)
    }
    rng = np.random.default_rng(5)
    probes = _raw(old.keys) + _raw(new_only.keys)
    probes += [bytes(rng.integers(0, 256, 12, dtype=np.uint8)) for _ in range(300)]
    probes += [k[:4] + b"\xff" * 8 for k in _raw(overlay.keys[::5])]  # overlay prefix only
    with (
        sf.PagedFile(tmp_path / "base.sset") as base,
        sf.PagedFile(tmp_path / "ov.sset", prefix_filter=True) as ov,
    ):
        assert ov.prefixes is not None
        look = _Lookup(base, ov, b"s" * 32, ss.CHEAP_KDF, len(new))
        for p in probes:
            e = look.get_tag(p)
            want = merged.get(p)
            got = None if e is None else (ss.STATUS_CODES[e.status], int(e.valid_until.timestamp()))
            assert got == want, p.hex()
    # the cases are all there
    assert {merged[k][0] for k in _raw(old.keys[revoked])} == {int(red)}
    assert {merged[k][0] for k in _raw(old.keys[unrevoked])} == {int(green)}
    assert all(k not in merged for k in _raw(old.keys[gone]))


class _Probed(np.ndarray):
    """The prefix array, recording the dtype of every probe bisected into it."""

    seen: list[np.dtype] = []

    def searchsorted(self, v, *args, **kw):  # type: ignore[no-untyped-def, override]
        _Probed.seen.append(np.asarray(v).dtype)
        return super().searchsorted(v, *args, **kw)


def test_the_prefix_filter_is_bisected_with_a_probe_of_its_own_dtype(tmp_path: Path) -> None:
    """A Python-int probe made numpy cast the whole prefix array to int64 on every lookup:
    O(n) a lookup, 0.4 ms at a 1 % overlay of 80 M entries, which put the lookup p99 after
    a delta over its 1 ms bar (benchmarks/bench_trust.py, issue #21). The probe must be a
    uint32, as the array is, so the bisection stays O(log n)."""
    cols = _cols(3000, 5)
    path = tmp_path / "f.sset"
    sf.write_columns(path, cols, b"k" * 16)
    with sf.PagedFile(path, prefix_filter=True) as f:
        assert f.prefixes is not None and f.prefixes.dtype == np.uint32
        f.prefixes = f.prefixes.view(_Probed)
        _Probed.seen = []
        hit = bytes(cols.keys[17])
        assert f.get(hit) == (int(cols.status[17]), int(cols.until[17]))
        f.get(bytes(12))  # a miss, bisected all the same
        assert _Probed.seen and all(d == np.uint32 for d in _Probed.seen), _Probed.seen

"""The status-set file and its deltas at their edges (pure functions, real files).

A delta must carry a change of valid-until alone; a file longer than its entry count is
refused like a short one; times after 2106 clamp instead of wrapping; the inflate cap holds
inside the loop (a bomb is stopped before it is written out), and the raw digest is checked.
"""

from __future__ import annotations

import hashlib
import zlib
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from sentinel.errors import BundleFormatError, BundleHashError
from sentinel.trust import statusset as ss

KID = b"k" * 8


def _cols(entries: dict[bytes, tuple[int, int]]) -> ss.Columns:
    return ss.Columns.build(
        entries.keys(), (v[0] for v in entries.values()), (v[1] for v in entries.values())
    )


def _key(i: int) -> bytes:
    return hashlib.sha256(str(i).encode()).digest()[: ss.KEY_BYTES]


def test_a_change_of_valid_until_alone_reaches_the_delta() -> None:
    old = _cols({_key(i): (1, 1000 + i) for i in range(50)})
    new = _cols({**{_key(i): (1, 1000 + i) for i in range(50)}, _key(7): (1, 5000)})
    delta = ss.diff(old, new)
    assert len(delta) == 1 and bytes(delta.keys[0]) == _key(7) and int(delta.until[0]) == 5000
    merged = ss.merge(old, delta)
    assert np.array_equal(merged.until, new.until) and np.array_equal(merged.keys, new.keys)


def test_unchanged_sets_give_an_empty_delta_and_deletions_are_tombstones() -> None:
    old = _cols({_key(i): (2, 10) for i in range(5)})
    assert len(ss.diff(old, old)) == 0
    fewer = _cols({_key(i): (2, 10) for i in range(4)})
    d = ss.diff(old, fewer)
    assert len(d) == 1 and int(d.status[0]) == 0 and bytes(d.keys[0]) == _key(4)


def test_a_status_file_longer_than_its_count_is_refused(tmp_path: Path) -> None:
    data = _cols({_key(i): (1, 10) for i in range(3)}).to_bytes(KID)
    ss.parse_header(data, len(data))
    with pytest.raises(BundleFormatError):
        ss.parse_header(data + b"\0" * ss.ENTRY_BYTES, len(data) + ss.ENTRY_BYTES)
    with pytest.raises(BundleFormatError):
        ss.parse_header(data[:-1], len(data) - 1)


def test_valid_until_after_2106_clamps_and_before_1970_is_zero() -> None:
    assert ss.to_epoch(datetime(2200, 1, 1, tzinfo=UTC)) == 0xFFFFFFFF
    assert ss.to_epoch(datetime(1960, 1, 1, tzinfo=UTC)) == 0
    assert ss.to_epoch(datetime(2030, 1, 1, tzinfo=UTC)) == 1893456000


def test_inflate_cap_stops_a_bomb_before_it_is_written(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.z"
    bomb.write_bytes(zlib.compress(b"\0" * (64 << 20), 9))  # 64 MiB of zeros, ~64 KiB
    out = tmp_path / "out"
    with pytest.raises(BundleFormatError, match="beyond its declared size"):
        ss.decompress_to(bomb, out, raw_size=1 << 20, raw_sha256="0" * 64)
    assert out.stat().st_size <= (1 << 20) + (1 << 20)  # at most the cap plus one chunk


def test_raw_digest_of_the_inflated_part_is_checked(tmp_path: Path) -> None:
    raw = _cols({_key(i): (1, 10) for i in range(9)}).to_bytes(KID)
    part = tmp_path / "part.z"
    part.write_bytes(zlib.compress(raw))
    ss.decompress_to(part, tmp_path / "ok", len(raw), hashlib.sha256(raw).hexdigest())
    with pytest.raises(BundleHashError):
        ss.decompress_to(part, tmp_path / "bad", len(raw), hashlib.sha256(b"x").hexdigest())


def test_keys_that_share_their_first_eight_bytes_still_sort_bytewise() -> None:
    """The u64 sort on the first 8 bytes falls back to a full sort on a tie."""
    keys = [b"SAMEPREF" + bytes([0, 0, 0, 9 - i]) for i in range(8)]  # descending tails
    cols = ss.Columns.build(keys, [1] * 8, range(8))
    assert [bytes(k) for k in cols.keys] == sorted(keys)
    assert [int(u) for u in cols.until] == list(range(7, -1, -1))  # values follow their keys


def test_a_header_shorter_than_its_size_is_a_format_error() -> None:
    data = _cols({_key(1): (1, 10)}).to_bytes(KID)
    with pytest.raises(BundleFormatError, match="truncated header"):
        ss.parse_header(data[:10], 10)


def test_a_full_set_is_refused_as_a_delta() -> None:
    old = _cols({_key(i): (1, 10) for i in range(3)})
    with pytest.raises(BundleFormatError, match="not a delta"):
        ss.merge(old, _cols({_key(9): (2, 10)}))


def test_a_chunk_read_from_the_file_is_that_slice_of_the_set(tmp_path: Path) -> None:
    cols = _cols({_key(i): (i % 3, 1000 + i) for i in range(20)})
    path = tmp_path / "status.bin"
    path.write_bytes(cols.to_bytes(KID))
    part = ss.WireFile(path).chunk(5, 12)
    assert len(part.keys) == len(part.status) == len(part.until) == 7
    assert np.array_equal(part.keys, cols.keys[5:12])
    assert np.array_equal(part.status, cols.status[5:12])
    assert np.array_equal(part.until, cols.until[5:12])


def test_the_wire_header_is_the_documented_layout() -> None:
    """docs/bundles.md: "SSET" | u8 format=2 | u8 kind (0 full, 1 delta) | 2 pad | u64 count
    | 16 B key id — read here with struct, not with the module's own header."""
    import struct

    kid = bytes(range(16))
    old = _cols({_key(i): (1, 1000 + i) for i in range(5)})
    new = _cols({**{_key(i): (1, 1000 + i) for i in range(5)}, _key(9): (3, 7)})
    for cols, kind, count in ((new, 0, 6), (ss.diff(old, new), 1, 1)):
        raw = cols.to_bytes(kid)
        assert struct.unpack("<4sBBxxQ16s", raw[:32]) == (b"SSET", 2, kind, count, kid)
        assert len(raw) == 32 + 17 * count  # 17-byte rows


def test_argon2_parameters_are_accepted_exactly_within_their_bounds() -> None:
    """t in 1..8, p in 1..4, m_kib from 8 * p to MAX_KDF_M_KIB: each bound accepted, one
    past it refused."""
    top = ss.MAX_KDF_M_KIB
    good = [(1, 1, 8), (8, 1, 8), (1, 4, 32), (1, 4, top), (1, 1, top)]
    bad = [(0, 1, 8), (9, 1, 8), (1, 0, 8), (1, 5, 40), (1, 4, 31), (1, 1, 7), (1, 1, top + 1)]
    for t, p, m in good:
        assert ss.check_kdf({"alg": "argon2id", "m_kib": m, "t": t, "p": p})["m_kib"] == m
    for t, p, m in bad:
        with pytest.raises(BundleFormatError, match="out of range"):
            ss.check_kdf({"alg": "argon2id", "m_kib": m, "t": t, "p": p})


def test_a_stream_cut_before_its_checksum_is_truncated(tmp_path: Path) -> None:
    """Every inflated byte is there, only zlib's adler-32 trailer is missing: the stream
    did not end, so the part is refused as truncated, digest or not."""
    raw = bytes(range(256)) * 64
    (tmp_path / "part").write_bytes(zlib.compress(raw)[:-4])
    with pytest.raises(BundleFormatError, match="truncated"):
        ss.decompress_to(
            tmp_path / "part", tmp_path / "raw", len(raw), hashlib.sha256(raw).hexdigest()
        )


def test_a_subject_is_the_same_identity_with_the_whitespace_a_registry_pads_it_with() -> None:
    """A health-code subject from a registry export padded with spaces or a line end, or
    typed in full-width characters, is the subject the code carries (NFKC, trimmed)."""
    want = ss.normalize_subject("K7Q2M9X4T1B8")
    for padded in (" K7Q2M9X4T1B8", "K7Q2M9X4T1B8 \n", "\tＫ7Q2M9X4T1B8"):
        assert ss.normalize_subject(padded) == want


def test_the_columnar_bytes_hold_one_byte_a_status_whatever_the_columns_integer_type() -> None:
    """Columns built straight from int64 arrays (numpy's default) still write the file
    format's one status byte an entry, and read back to the same set."""
    keys = np.array(sorted(_key(i) for i in range(5)), dtype=ss.KEY_DTYPE)
    status = np.array([1, 2, 3, 1, 2], dtype=np.int64)
    until = np.array([10, 20, 30, 40, 50], dtype=np.int64)
    raw = ss.Columns(keys, status, until).to_bytes(KID)
    assert len(raw) == ss.HEADER_SIZE + 5 * ss.ENTRY_BYTES
    back = ss.columns_from_bytes(raw, len(raw))
    assert back.status.tolist() == [1, 2, 3, 1, 2] and back.until.tolist() == [10, 20, 30, 40, 50]


def test_the_cbc_mac_tag_function_is_named_in_what_the_check_returns() -> None:
    """``check_kdf`` returns the parameters the tag function is then built from: the
    AES-CBC-MAC one comes back named, never as an empty (unnamed) set."""
    assert ss.check_kdf({"alg": "aes-cbc-mac"}) == {"alg": "aes-cbc-mac"}


@pytest.mark.parametrize("field", ["m_kib", "t", "p"])
@pytest.mark.parametrize("value", [64.5, "64", True, None])
def test_kdf_parameters_that_are_not_integers_are_refused(field: str, value: object) -> None:
    """A signed manifest is still data: a float, a string or a boolean for any argon2id
    parameter is a format error, never passed on to the KDF or compared with an int."""
    kdf = {"alg": "argon2id", "m_kib": 64, "t": 2, "p": 1, field: value}
    with pytest.raises(BundleFormatError, match="out of range"):
        ss.check_kdf(kdf)


def test_keys_that_share_their_first_eight_bytes_sort_bytewise() -> None:
    """The u64 sort on the first 8 bytes needs the last 4 to break ties: keys of one
    prefix must still come out in full bytewise order."""
    rng = np.random.default_rng(5)
    keys = rng.integers(0, 256, (64, ss.KEY_BYTES), dtype=np.uint8)
    keys[:32, :8] = keys[0, :8]  # half of them share a prefix
    got = [bytes(keys[i]) for i in ss.sort_order(keys)]
    assert got == sorted(bytes(k) for k in keys)


def test_a_naive_time_is_utc_and_an_aware_one_keeps_its_offset(monkeypatch) -> None:
    """1893456000 is 2030-01-01T00:00:00Z (date -u -d @1893456000), on a device whose local
    zone is not UTC too."""
    import time
    from datetime import timedelta, timezone

    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    try:
        assert ss.to_epoch(datetime(2030, 1, 1)) == 1893456000
        shanghai = timezone(timedelta(hours=8))
        assert ss.to_epoch(datetime(2030, 1, 1, 8, tzinfo=shanghai)) == 1893456000
    finally:
        monkeypatch.undo()
        time.tzset()


def test_an_argon2id_tag_takes_its_passes_and_lanes_from_the_kdf() -> None:
    """The tag is Argon2id (RFC 9106) of the identity, salted with the status key, with the
    manifest's m_kib, t (passes) and p (lanes); here t and p differ so neither can be the other."""
    from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

    key, identity = bytes(range(32)), b"X1234567"
    kdf = {"alg": "argon2id", "m_kib": 64, "t": 2, "p": 1}
    expected = Argon2id(
        salt=key, length=ss.KEY_BYTES, iterations=2, lanes=1, memory_cost=64
    ).derive(identity)
    assert ss.tag(key, identity, kdf) == expected
    other = Argon2id(salt=key, length=ss.KEY_BYTES, iterations=1, lanes=2, memory_cost=64)
    assert ss.tag(key, identity, kdf) != other.derive(identity)
    assert ss.tag(key, identity, {**kdf, "m_kib": 128}) != expected


def test_an_empty_set_is_its_header_alone_and_reads_back_empty() -> None:
    """An authority with nobody listed publishes a set of 0 entries: 32 bytes of header
    (magic, format, kind, count 0, key id) and no column bytes, which a device reads as 0."""
    empty = ss.Columns.empty()
    assert (len(empty.keys), len(empty.status), len(empty.until)) == (0, 0, 0)
    data = empty.to_bytes(b"\x01" * 16)
    assert len(data) == ss.HEADER_SIZE == 32
    back = ss.columns_from_bytes(data, len(data))
    assert len(back) == 0 and back.kind == ss.KIND_FULL
    assert ss.Columns.empty(ss.KIND_DELTA).kind == ss.KIND_DELTA
    assert ss.apply_chunk(ss.Columns.empty(), ss.Columns.empty(ss.KIND_DELTA)).rows().size == 0


def test_the_default_tag_function_is_argon2id_16_mib_one_pass_one_lane() -> None:
    """The documented default (docs/bundles.md; RFC 9106 §4's shape for little memory):
    typed here, not read back from the code."""
    assert ss.DEFAULT_KDF == {"alg": "argon2id", "m_kib": 16384, "t": 1, "p": 1}
    assert ss.check_kdf(dict(ss.DEFAULT_KDF)) == ss.DEFAULT_KDF


def test_compose_refuses_a_full_set_on_either_side() -> None:
    """compose() joins two deltas; a full set given as the overlay (or as the delta) is a
    format error, never read as a delta."""
    full = ss.Columns.empty(ss.KIND_FULL)
    delta = ss.Columns.empty(ss.KIND_DELTA)
    assert len(ss.compose(delta, delta)) == 0
    for overlay, d in ((full, delta), (delta, full)):
        with pytest.raises(BundleFormatError, match="not a delta"):
            ss.compose(overlay, d)


@pytest.mark.parametrize("kind", [2, 3, 255])
def test_a_status_file_of_an_unknown_kind_is_not_a_status_set(kind: int) -> None:
    data = bytearray(ss.Columns.empty().to_bytes(b"\x01" * 16))
    assert ss.parse_header(bytes(data), len(data))[0] == ss.KIND_FULL
    data[5] = kind  # magic (4 bytes), format, kind
    assert kind not in (ss.KIND_FULL, ss.KIND_DELTA)
    with pytest.raises(BundleFormatError, match="not a status set file"):
        ss.parse_header(bytes(data), len(data))


@pytest.mark.parametrize("extra", [{"t": 1}, {"m_kib": 64}, {"key": "x"}])
def test_the_cheap_tag_function_takes_no_parameters(extra: dict) -> None:
    """``aes-cbc-mac`` has none: a manifest that gives it some is malformed (a typo of an
    argon2id description must not fall back to the cheap function silently)."""
    assert ss.check_kdf({"alg": "aes-cbc-mac"}) == {"alg": "aes-cbc-mac"}
    with pytest.raises(BundleFormatError):
        ss.check_kdf({"alg": "aes-cbc-mac", **extra})

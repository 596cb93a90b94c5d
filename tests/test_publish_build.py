"""The publisher's fast build (bucketed sort, two-stream zlib part, column-at-a-time CSV)
gives the set the device verifies and looks up, the same bytes every time."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sentinel.authority import csvfast, inputs, setbuild, status
from sentinel.authority.publish import Inputs, generate_root_key, publish
from sentinel.authority.testing import sync_dir, test_devices
from sentinel.errors import BundleFormatError, ConfigError
from sentinel.trust import statusset as ss
from sentinel.trust.store import StoreTrust

NOW = datetime(2030, 1, 1, tzinfo=UTC)
HEADER = "doc_type,country,number,status,valid_until"


def _random_set(n: int, seed: int, *, first_bytes: int = 256) -> ss.Columns:
    rng = np.random.default_rng(seed)
    m = rng.integers(0, 256, (n, ss.KEY_BYTES), dtype=np.uint8)
    if first_bytes < 256:
        m[:, 0] %= first_bytes  # few first bytes: full buckets
    keys = np.unique(m.view(ss.KEY_DTYPE).ravel())
    rng.shuffle(keys)
    status = rng.integers(1, 4, len(keys), dtype=np.uint8)
    until = rng.integers(0, 2**32, len(keys), dtype=np.uint64).astype(ss.UNTIL_DTYPE)
    return ss.Columns(keys, status, until, ss.KIND_FULL)


@pytest.mark.parametrize(("n", "first_bytes"), [(0, 256), (1, 256), (5000, 256), (3000, 2)])
def test_bucketed_sort_is_the_reference_sort(n: int, first_bytes: int) -> None:
    c = _random_set(n, n, first_bytes=first_bytes)
    want = ss.Columns.from_arrays(c.keys, c.status, c.until, ss.KIND_FULL)
    b = setbuild.Buckets()
    for lo in range(0, len(c), 700):  # in chunks, as the rows arrive
        b.add(c.keys[lo : lo + 700], c.status[lo : lo + 700], c.until[lo : lo + 700])
    got = b.finish()
    assert got.keys.tobytes() == want.keys.tobytes()
    assert got.status.tobytes() == want.status.tobytes()
    assert got.until.tobytes() == want.until.tobytes()


def test_tags_that_tie_on_the_packed_sort_bits_are_ordered_by_their_whole_tag() -> None:
    rng = np.random.default_rng(4)
    m = rng.integers(0, 256, (3000, ss.KEY_BYTES), dtype=np.uint8)
    m[:, 0] = 9
    m[:, 1:7] = m[rng.integers(0, 40, 3000), 1:7]  # 40 runs sharing bytes 1-6
    k = np.unique(m.view(ss.KEY_DTYPE).ravel())
    rng.shuffle(k)
    assert setbuild.bucket_order(k).tolist() == ss.sort_order(k).tolist()
    with pytest.raises(BundleFormatError, match="appears twice"):
        setbuild.bucket_order(np.concatenate([k, k[17:18]]))


def test_bucketed_sort_refuses_a_tag_twice() -> None:
    c = _random_set(2000, 3)
    keys = np.concatenate([c.keys, c.keys[1234:1235]])
    status = np.concatenate([c.status, c.status[:1]])
    until = np.concatenate([c.until, c.until[:1]])
    with pytest.raises(BundleFormatError, match="appears twice"):
        setbuild.sorted_set(keys, status, until)


@pytest.mark.parametrize(("n", "piece"), [(0, setbuild.PIECE), (1, setbuild.PIECE),
                                          (40_000, setbuild.PIECE), (40_000, 4099)])  # fmt: skip
def test_part_inflates_to_the_columnar_file(tmp_path: Path, monkeypatch, n: int, piece: int):
    """One zlib stream whatever the pieces it was deflated in (4099 bytes: 166 pieces,
    cut inside the tags, at the status column and inside it)."""
    monkeypatch.setattr(setbuild, "PIECE", piece)
    cols = ss.Columns.from_arrays(*(lambda c: (c.keys, c.status, c.until))(_random_set(n, 9)), 0)
    kid = os.urandom(16)
    part = setbuild.write_part(cols, kid, tmp_path)
    z = (tmp_path / part.sha256).read_bytes()
    assert hashlib.sha256(z).hexdigest() == part.sha256 and len(z) == part.size
    raw = zlib.decompress(z)  # one zlib stream for the stdlib inflater the device uses
    assert raw == cols.to_bytes(kid)
    d = zlib.decompressobj()
    assert d.decompress(z) == raw and d.eof and not d.unused_data  # one stream, nothing after
    assert (hashlib.sha256(raw).hexdigest(), len(raw)) == (part.raw_sha256, part.raw_size)
    assert part.set_digest == cols.digest()
    out = tmp_path / "inflated"
    ss.decompress_to(tmp_path / part.sha256, out, part.raw_size, part.raw_sha256)
    assert out.read_bytes() == raw
    again = setbuild.write_part(cols, kid, tmp_path / "again")
    assert again == part  # the same bytes every time


def test_cut_messages_give_the_tags_of_whole_ones() -> None:
    key = os.urandom(32)
    idents = [b"doc|P|XXA|N%09d" % i for i in range(300)] + [b"", b"x" * 31]
    whole = np.stack([np.frombuffer(ss.mac_message(i), np.uint8) for i in idents])
    want = [ss.mac(key, i) for i in idents]
    for w in (32, 48, 80):
        assert [bytes(r) for r in ss.mac_many(key, whole[:, :w])] == want
    with pytest.raises(ValueError, match="multiple of 16"):
        ss.mac_many(key, whole[:, :20])


def _csv(path: Path, rows: list[str]) -> Path:
    path.write_text(HEADER + "\n" + "".join(r + "\n" for r in rows))
    return path


def _rows(n: int, seed: int) -> list[tuple[str, str, str, str, str]]:
    rng = random.Random(seed)
    days = [(NOW + timedelta(days=d)).date().isoformat() for d in range(1, 400)]
    out = []
    for i in range(n):
        number = f"{rng.choice('ABCXYZ')}{i:0{rng.randint(5, 12)}d}"
        out.append((rng.choice("PIAC"), rng.choice(["XXA", "D", "UTO"]), number,
                    rng.choice(["green", "yellow", "red"]), rng.choice(days)))  # fmt: skip
    return out


def test_device_verifies_and_looks_up_a_fast_build(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(inputs, "CHUNK_BYTES", 4096)  # many chunks and buckets per chunk
    rows = _rows(3000, 1)
    messy = [
        (t.lower() + "<", c.lower(), f"{n[:2]}-{n[2:]}", s.upper(), u) for t, c, n, s, u in rows
    ]
    for name, body in (("plain", rows), ("messy", messy)):
        csv_path = _csv(tmp_path / f"{name}.csv", [",".join(r) for r in body])
        site = tmp_path / f"site-{name}"
        key = generate_root_key()
        publish(site, Inputs(), [key], now=NOW, status_csv=csv_path,
                devices=test_devices(site), kdf=ss.CHEAP_KDF)  # fmt: skip
        data = tmp_path / f"device-{name}"
        sync_dir(data, site, key.public_key(), now=NOW)
        with StoreTrust(data) as trust:
            status = trust.status()
            assert status is not None and len(status) == len(rows)
            for t, c, n, s, u in rows[::97]:
                e = status.lookup_document(t, c, n)
                assert e is not None and e.status == s
                assert e.valid_until == datetime.fromisoformat(u).replace(tzinfo=UTC) + timedelta(
                    days=1, seconds=-1
                )
            assert status.lookup_document("P", "XXA", "NOT-LISTED") is None


def test_same_input_twice_gives_the_same_part(tmp_path: Path) -> None:
    csv_path = _csv(tmp_path / "s.csv", [",".join(r) for r in _rows(2000, 2)])
    key = generate_root_key()
    refs = []
    for run in ("a", "b"):
        site = tmp_path / f"site-{run}"
        if run == "b":  # the same status key: copy the authority's private state
            shutil.copytree(tmp_path / "site-a.authority", tmp_path / "site-b.authority")
        pub = publish(site, Inputs(), [key], now=NOW, status_csv=csv_path,
                      devices=test_devices(site), kdf=ss.CHEAP_KDF)  # fmt: skip
        refs.append(pub.manifest.parts["status"])
    assert refs[0].sha256 == refs[1].sha256 and refs[0].size == refs[1].size
    assert (tmp_path / "site-a" / refs[0].path).read_bytes() == (
        tmp_path / "site-b" / refs[1].path
    ).read_bytes()


def test_worker_processes_build_the_same_set_and_name_bad_lines(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(inputs, "CHUNK_BYTES", 2048)  # many blocks in flight
    rows = [",".join(r) for r in _rows(3000, 5)]
    csv_path = _csv(tmp_path / "s.csv", rows)
    sk, _ = status.load_or_create_key(tmp_path / "state", kdf=ss.CHEAP_KDF)
    one = status.build_columns_csv(csv_path, sk, tmp_path / "state", workers=1).columns
    two = status.build_columns_csv(csv_path, sk, tmp_path / "state", workers=2).columns
    assert len(one) == 3000 and one.to_bytes(b"k" * 16) == two.to_bytes(b"k" * 16)
    rows[2500] = "P,XXA,N1,purple,2030-01-01"
    _csv(csv_path, rows)
    with pytest.raises(ConfigError, match=r"s\.csv:2502: status must be"):
        status.build_columns_csv(csv_path, sk, tmp_path / "state", workers=2)


_cell = st.text(alphabet="ABCXYZ0189", min_size=1, max_size=14)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(["P", "I", "A"]),
            st.text(alphabet="ABCXYZ", max_size=3),
            _cell,
            st.sampled_from(["green", "red", "yellow"]),
            st.sampled_from(["2030-01-01", "2031-06-30", "2030-01-01T12:00:00Z"]),
        ),
        min_size=1,
        max_size=40,
    ),
    order=st.permutations(range(5)),
)
def test_plain_rows_in_any_column_order_agree_with_the_csv_module(rows, order, tmp_path_factory):
    names = HEADER.split(",")
    header = [names[i] for i in order]
    body = "".join(",".join(r[i] for i in order) + "\n" for r in rows)
    p = tmp_path_factory.mktemp("csv")
    c = csvfast.Layout(p, header)
    fast = csvfast.rows_fast(p, body.encode(), c, 2, {})
    slow = inputs._rows_slow(p, body, c, 2, {})
    assert fast is not None
    assert [fast.identity(i) for i in range(len(fast))] == [
        slow.identity(i) for i in range(len(slow))
    ]
    assert fast.status.tolist() == slow.status.tolist()
    assert fast.until.tolist() == slow.until.tolist()
    assert (fast.messages() == slow.messages()).all()


@pytest.mark.parametrize(
    ("bad", "line"),
    [
        ({5: "P,XXA,N5,blue,2030-01-01", 9: "P,XXA,N9,green,2030-13-01"}, 7),
        ({9: "P,XXA,N9,blue,2030-01-01", 5: "P,XXA,N5,green,someday"}, 7),
        ({4: "P,XXA,N4,green,never", 8: "P,XXA,N8,grey,2030-01-01"}, 6),
    ],
)
def test_an_error_names_the_first_bad_line(tmp_path: Path, bad: dict, line: int) -> None:
    rows = [f"P,XXA,N{i},green,2030-01-0{1 + i % 3}" for i in range(12)]
    for i, r in bad.items():
        rows[i] = r
    p = _csv(tmp_path / "s.csv", rows)
    with pytest.raises(ConfigError, match=rf"s\.csv:{line}: "):
        list(inputs.read_status_table(p))


def test_distinct_cells_are_exact_when_their_hashes_collide() -> None:
    """Two different 16-byte cells built to have the same 64-bit hash (the last word
    chosen to cancel the difference) stay two values; the rows keep their own."""
    fnv = (1 << 64) - 1

    def step(x: int, w: int) -> int:
        return ((x * 0x100000001B3) & fnv) ^ w

    a0, a1 = int.from_bytes(b"green,20", "little"), int.from_bytes(b"30-01-01", "little")
    b0 = int.from_bytes(b"red,2030", "little")
    b1 = step(step(16, a0), a1) ^ ((step(16, b0) * 0x100000001B3) & fnv)
    cells = [a0.to_bytes(8, "little") + a1.to_bytes(8, "little"),
             b0.to_bytes(8, "little") + b1.to_bytes(8, "little")]  # fmt: skip
    rows = np.frombuffer(b"".join(cells * 50), np.uint8).reshape(100, 16).copy()
    lens = np.full(100, 16)
    words = rows.view("<u8")
    hashes = [step(step(16, int(r[0])), int(r[1])) for r in words[:2]]
    assert hashes[0] == hashes[1] and cells[0] != cells[1]  # the collision is real
    reps, inv = csvfast._distinct(rows, lens)
    assert len(reps) == 2
    got = [bytes(rows[reps[i]]) for i in inv]
    assert got == [bytes(r) for r in rows]

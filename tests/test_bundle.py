"""Pure checks: the status-set format, normalization, deltas, and manifest trust decisions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from hypothesis import given, settings
from hypothesis import strategies as st

from sentinel.errors import (
    BundleError,
    BundleExpiredError,
    BundleFormatError,
    BundleRollbackError,
    BundleSignatureError,
)
from sentinel.trust import bundle as bm
from sentinel.trust import statusfile as sf
from sentinel.trust import statusset as ss

NOW = datetime(2022, 5, 1, 12, 0, tzinfo=UTC)
KEY = b"k" * 32


def test_document_normalization_folds_fillers_case_and_width() -> None:
    a = ss.normalize_document("P<", "xxa", "c01x00t47")
    assert a == ss.normalize_document("PX", "XXA", "C01 X00-T47<")
    assert a == ss.normalize_document("P", "XXA", "Ｃ01X00T47")  # full-width C (NFKC)
    assert a != ss.normalize_document("I", "XXA", "C01X00T47")
    assert a != ss.normalize_document("P", "XXB", "C01X00T47")
    # subjects live in their own namespace: a subject id equal to a document string differs
    assert ss.normalize_subject("doc|P|XXA|C01X00T47") != a


def test_keys_depend_on_the_bundle_key() -> None:
    ident = ss.normalize_document("P", "XXA", "C01X00T47")
    assert ss.entry_key(KEY, ident) != ss.entry_key(b"j" * 32, ident)
    assert len(ss.entry_key(KEY, ident)) == ss.KEY_BYTES


def _cols(entries: dict[bytes, tuple[int, int]], kind: int = ss.KIND_FULL) -> ss.Columns:
    return ss.Columns.build(
        entries.keys(), (v[0] for v in entries.values()), (v[1] for v in entries.values()), kind
    )


def _as_dict(c: ss.Columns) -> dict[bytes, tuple[int, int]]:
    return {c.keys[i : i + 1].tobytes(): (int(c.status[i]), int(c.until[i])) for i in range(len(c))}


def test_status_file_roundtrip_and_lookup(tmp_path) -> None:
    entries = {
        ss.entry_key(KEY, f"doc|P|XXA|{i}".encode()): (1 + i % 3, 1000 + i) for i in range(500)
    }
    entries[b"\x00" * 12] = (3, 7)  # a key of zero bytes survives (no string stripping)
    cols = _cols(entries)
    wire = tmp_path / "s.wire"
    wire.write_bytes(cols.to_bytes(ss.key_id(KEY)))
    assert wire.stat().st_size == ss.HEADER_SIZE + len(entries) * ss.ENTRY_BYTES
    path = tmp_path / "s.sset"
    digest = sf.convert_wire(ss.WireFile(wire), path)
    assert digest == cols.digest()
    with sf.PagedFile(path) as f:
        assert len(f) == len(entries) and f.key_id == ss.key_id(KEY) and f.digest == digest
        assert f.pages == -(-len(entries) // sf.PER_PAGE) == 3  # 501 entries, 240 a page
        for k, v in entries.items():
            assert f.get(k) == v
        assert f.get(b"\xff" * 12) is None
        assert f.get(ss.entry_key(KEY, b"doc|P|XXA|nope")) is None
        assert _as_dict(f.columns()) == entries
    assert path.stat().st_size == sf.PAGE * (1 + 3) + 3 * ss.KEY_BYTES


def test_paged_writer_refuses_unsorted_input(tmp_path) -> None:
    w = sf.PagedWriter(tmp_path / "x", ss.KIND_FULL, ss.key_id(KEY))
    w.add(_cols({b"b" * 12: (1, 1)}))
    with pytest.raises(BundleFormatError, match="sorted"):
        w.add(_cols({b"a" * 12: (1, 1)}))
    w.abort()
    assert not (tmp_path / "x").exists()


def test_damaged_paged_file_is_refused(tmp_path) -> None:
    path = tmp_path / "s.sset"
    sf.write_columns(path, _cols({b"a" * 12: (1, 1)}), ss.key_id(KEY))
    data = path.read_bytes()
    path.write_bytes(data[:-1])
    with pytest.raises(BundleFormatError):
        sf.PagedFile(path)


def test_duplicate_documents_are_refused() -> None:
    k = ss.entry_key(KEY, b"doc|P|XXA|1")
    with pytest.raises(BundleFormatError, match="twice"):
        ss.Columns.build([k, k], [1, 3], [1, 1])


def test_truncated_status_file_is_refused(tmp_path) -> None:
    data = _cols({b"a" * 12: (1, 1), b"b" * 12: (1, 1)}).to_bytes(ss.key_id(KEY))
    with pytest.raises(BundleFormatError):
        ss.columns_from_bytes(data[:-3], len(data) - 3)
    with pytest.raises(BundleFormatError):
        ss.columns_from_bytes(b"JUNK" + data[4:], len(data))


_entry = st.tuples(st.integers(1, 3), st.integers(0, 2**32 - 1))
_keyset = st.dictionaries(st.binary(min_size=12, max_size=12), _entry, max_size=40)


@settings(max_examples=60, deadline=None)
@given(old=_keyset, new=_keyset)
def test_diff_then_merge_gives_the_new_set(old, new) -> None:
    o, n = _cols(old), _cols(new)
    d = ss.diff(o, n)
    assert _as_dict(ss.merge(o, d)) == new
    assert len(d) <= len(old) + len(new)
    assert list(ss.merge(o, d).keys) == sorted(ss.merge(o, d).keys)
    assert ss.count_after(len(o), d) == len(new)


@settings(max_examples=60, deadline=None)
@given(a=_keyset, b=_keyset, c=_keyset)
def test_composed_deltas_equal_the_direct_one(a, b, c, tmp_path_factory) -> None:
    """Two deltas composed into an overlay, merged onto the base in streamed chunks, give
    the last set; the entry count is known from the overlay alone."""
    x, y, z = _cols(a), _cols(b), _cols(c)
    ov = ss.compose(ss.compose(ss.Columns.empty(ss.KIND_DELTA), ss.diff(x, y)), ss.diff(y, z))
    assert _as_dict(ss.merge(x, ov)) == c
    assert ss.count_after(len(x), ov) == len(c)
    d = tmp_path_factory.mktemp("m")
    sf.write_columns(d / "base", x, ss.key_id(KEY))
    with sf.PagedFile(d / "base") as base:
        digest = sf.merge_into(base, ov, d / "new")
    assert digest == z.digest()
    with sf.PagedFile(d / "new") as f:
        assert _as_dict(f.columns()) == c


def test_merge_streams_across_chunks(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(sf, "CHUNK", sf.PER_PAGE)  # one page a chunk
    old = {bytes([i // 256, i % 256]) + b"k" * 10: (1, i) for i in range(0, 2000, 2)}
    new = dict(old)
    for i in range(1, 2000, 7):
        new[bytes([i // 256, i % 256]) + b"k" * 10] = (3, i)  # inserts between every page
    for k in list(old)[::5]:
        del new[k]
    x, z = _cols(old), _cols(new)
    sf.write_columns(tmp_path / "base", x, ss.key_id(KEY))
    with sf.PagedFile(tmp_path / "base") as base:
        assert sf.merge_into(base, ss.diff(x, z), tmp_path / "new", None) == z.digest()


def test_delta_deleting_an_absent_entry_is_refused() -> None:
    d = _cols({b"z" * 12: (0, 0)}, ss.KIND_DELTA)
    with pytest.raises(BundleFormatError, match="does not fit"):
        ss.merge(_cols({b"a" * 12: (1, 1)}), d)


def test_delta_contradicting_the_overlay_is_refused() -> None:
    ov = _cols({b"a" * 12: (ss.INSERT | 1, 1)}, ss.KIND_DELTA)
    with pytest.raises(BundleFormatError, match="contradicts"):
        ss.compose(ov, _cols({b"a" * 12: (ss.INSERT | 2, 1)}, ss.KIND_DELTA))


def test_inflate_is_capped(tmp_path) -> None:
    import zlib

    z = tmp_path / "z"
    z.write_bytes(zlib.compress(b"\0" * 1_000_000))
    with pytest.raises(BundleFormatError, match="beyond"):
        ss.decompress_to(z, tmp_path / "out", 1000, "0" * 64)


# ---- manifests ----------------------------------------------------------------------


def _manifest(keys, *, version=3, expires=NOW + timedelta(days=1), delta_base=None, **kw) -> bytes:
    parts = [bm.PartRef("rules", "a" * 64, 10)]
    status = None
    if delta_base is not None:
        parts.append(bm.PartRef("status_delta", "b" * 64, 5, bm.ZLIB, 17, "c" * 64))
        parts.append(bm.PartRef("status_keys", "e" * 64, 5))
        status = bm.StatusInfo(ss.key_id(KEY).hex(), ss.CHEAP_KDF, 1, "d" * 64, 49)
    payload = bm.make_payload(
        version=version,
        issued_at=NOW,
        expires_at=expires,
        authority_key_id=bm.key_id(keys[0]),
        parts=parts,
        status=status,
        delta_base=delta_base,
        **kw,
    )
    return bm.sign_manifest(payload, keys)


@pytest.mark.parametrize(
    "make", [ed25519.Ed25519PrivateKey.generate, lambda: ec.generate_private_key(ec.SECP256R1())]
)
def test_manifest_verifies_with_the_pinned_key_only(make) -> None:
    root, other = make(), make()
    raw = _manifest([root])
    m = bm.verify_manifest(raw, [root.public_key()], NOW)
    assert m.version == 3 and m.signed_by == bm.key_id(root) and m.parts["rules"].size == 10
    with pytest.raises(BundleSignatureError):
        bm.verify_manifest(raw, [other.public_key()], NOW)


def test_tampered_manifest_payload_is_refused() -> None:
    root = ed25519.Ed25519PrivateKey.generate()
    env = json.loads(_manifest([root]))
    env["signed"] = env["signed"].replace('"version":3', '"version":9')
    with pytest.raises(BundleSignatureError):
        bm.verify_manifest(json.dumps(env).encode(), [root.public_key()], NOW)


@pytest.mark.parametrize("raw", [b"", b"{}", b"[1]", b'{"signed": 1, "signatures": []}'])
def test_garbage_manifests_are_refused_cleanly(raw) -> None:
    root = ed25519.Ed25519PrivateKey.generate()
    with pytest.raises(BundleError):
        bm.verify_manifest(raw, [root.public_key()], NOW)


def test_expired_manifest_is_refused() -> None:
    root = ed25519.Ed25519PrivateKey.generate()
    raw = _manifest([root], expires=NOW - timedelta(seconds=1))
    with pytest.raises(BundleExpiredError):
        bm.verify_manifest(raw, [root.public_key()], NOW)


def test_rollback_and_same_version_with_other_content() -> None:
    root = ed25519.Ed25519PrivateKey.generate()
    m = bm.verify_manifest(_manifest([root], version=3), [root.public_key()], NOW)
    with pytest.raises(BundleRollbackError, match="older"):
        bm.plan_update(m, 4, "x", {})
    with pytest.raises(BundleRollbackError, match="different content"):
        bm.plan_update(m, 3, "x", {})
    assert bm.plan_update(m, 3, m.digest, {}).up_to_date
    plan = bm.plan_update(m, 2, "x", {"rules": "a" * 64})
    assert plan.fetch == ()  # the held part is not downloaded again


def test_delta_applies_onto_its_exact_base_only() -> None:
    root = ed25519.Ed25519PrivateKey.generate()
    m = bm.verify_manifest(_manifest([root], delta_base=2), [root.public_key()], NOW)
    assert bm.plan_update(m, 2, "x", {"status": "d" * 64}).use_delta
    with pytest.raises(BundleError, match="onto version 2 only"):
        bm.plan_update(m, 1, "x", {"status": "d" * 64})
    with pytest.raises(BundleError, match="has 2 but not its status set"):
        bm.plan_update(m, 2, "x", {})  # the base's status files are gone: a full set
    with pytest.raises(BundleError, match="no bundle"):
        bm.plan_update(m, None, None, {})


def test_next_root_key_must_be_a_supported_key() -> None:
    root = ed25519.Ed25519PrivateKey.generate()
    nxt = ed25519.Ed25519PrivateKey.generate()
    m = bm.verify_manifest(
        _manifest([root], next_root_key=bm.public_pem(nxt)), [root.public_key()], NOW
    )
    assert m.next_root_key == bm.public_pem(nxt)
    env = json.loads(_manifest([root]))
    doc = json.loads(env["signed"])
    doc["next_root_key"] = "not a key"
    with pytest.raises(BundleFormatError):
        bm.verify_manifest(bm.sign_manifest(doc, [root]), [root.public_key()], NOW)


def test_columns_are_sorted_bytewise() -> None:
    c = _cols({b"\x01" + b"\x00" * 11: (1, 1), b"\x00\xff" + b"\x00" * 10: (1, 1)})
    assert c.keys[0:1].tobytes().startswith(b"\x00\xff")
    assert isinstance(c.keys, np.ndarray)


def test_batch_cbc_mac_equals_the_library_cbc_mode() -> None:
    """The authority's all-rows-at-once CBC-MAC is the device's single CBC call."""
    import numpy as np

    from sentinel.authority.inputs import Chunk

    idents = [b"", b"doc|P|XXA|C01X00T47", b"subj|" + b"x" * 64, bytes(range(1, 80))]
    c = Chunk.of(idents, [1] * 4, [0] * 4)
    many = ss.mac_many(KEY, c.messages())
    assert [bytes(r) for r in many] == [ss.mac(KEY, i) for i in idents]
    # and CBC-MAC is the last block of AES-CBC with a zero IV (cross-check with pyca)
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    enc = Cipher(algorithms.AES(KEY), modes.CBC(b"\0" * 16)).encryptor()
    assert enc.update(ss.mac_message(idents[1]))[-16:] == ss.mac(KEY, idents[1])
    assert np.asarray(many).shape == (4, 16)
    with pytest.raises(ValueError):
        ss.mac_message(b"x" * 80)


@pytest.mark.parametrize("width", [16, 32, 48, 64])
def test_batch_cbc_mac_of_rows_cut_short_is_the_full_messages(width: int) -> None:
    """The publisher's CSV path hands ``mac_many`` messages cut to the widest identity
    (a multiple of 16 bytes): the blocks left out are the messages' zeros, and the MAC
    is still pyca's CBC over the whole fixed-length message."""
    import numpy as np

    from sentinel.authority.inputs import Chunk

    idents = [b"", b"doc|P|XXA|C01X00T4"[: width // 2], b"subj|" + b"x" * (width - 6)]
    full = Chunk.of(idents, [1] * 3, [0] * 3).messages()
    assert full.shape == (3, ss.MAC_BYTES) and not full[:, width:].any()
    cut = np.ascontiguousarray(full[:, :width])
    assert [bytes(r) for r in ss.mac_many(KEY, cut)] == [ss.mac(KEY, i) for i in idents]


def test_inflate_runs_in_bounded_memory(tmp_path) -> None:
    """Value columns compress ~1000:1; one read must not inflate to the whole set."""
    import hashlib
    import tracemalloc
    import zlib

    raw = b"\0" * (64 << 20)
    z = tmp_path / "z"
    z.write_bytes(zlib.compress(raw, 9))
    tracemalloc.start()
    ss.decompress_to(z, tmp_path / "out", len(raw), hashlib.sha256(raw).hexdigest())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 8 << 20


def test_a_full_status_set_held_decompressed_is_not_downloaded_again() -> None:
    """The device keeps the status set decompressed, so it holds it under the set's own
    digest (StatusInfo.sha256), not the compressed part's."""
    root = ed25519.Ed25519PrivateKey.generate()
    parts = [
        bm.PartRef("rules", "a" * 64, 10),
        bm.PartRef("status", "f" * 64, 5, bm.ZLIB, 49, "d" * 64),
        bm.PartRef("status_keys", "e" * 64, 5),
    ]
    status = bm.StatusInfo(ss.key_id(KEY).hex(), ss.CHEAP_KDF, 1, "d" * 64, 49)
    payload = bm.make_payload(
        version=3,
        issued_at=NOW,
        expires_at=NOW + timedelta(days=1),
        authority_key_id=bm.key_id(root),
        parts=parts,
        status=status,
    )
    m = bm.verify_manifest(bm.sign_manifest(payload, [root]), [root.public_key()], NOW)
    held = {"rules": "a" * 64, "status_keys": "e" * 64}
    same = bm.plan_update(m, 2, "x", {**held, "status": "d" * 64})
    assert same.fetch == () and not same.use_delta
    other = bm.plan_update(m, 2, "x", {**held, "status": "9" * 64})
    assert [r.name for r in other.fetch] == ["status"]
    assert [r.name for r in bm.plan_update(m, 2, "x", held).fetch] == ["status"]
    # the set held, nothing else: every other part is fetched (the skip is the set's alone)
    only_set = bm.plan_update(m, 2, "x", {"status": "d" * 64})
    assert sorted(r.name for r in only_set.fetch) == ["rules", "status_keys"]


@pytest.mark.parametrize("value", [3.5, 3.0, "3", None, [3], -1, True])
def test_a_signed_manifest_whose_integers_are_not_integers_is_a_format_error(value) -> None:
    """Signed by the right key and still refused: version, a part's size and the status
    set's count must each be a JSON integer >= 0 (not a float, a string, a bool or null)."""
    root = ed25519.Ed25519PrivateKey.generate()
    payload = json.loads(json.loads(_manifest([root], delta_base=2))["signed"])
    for path in (("version",), ("parts", "rules", "size"), ("status", "count")):
        doc = json.loads(json.dumps(payload))
        target = doc
        for k in path[:-1]:
            target = target[k]
        target[path[-1]] = value
        with pytest.raises(BundleFormatError, match="non-negative integer"):
            bm.verify_manifest(bm.sign_manifest(doc, [root]), [root.public_key()], NOW)


@pytest.mark.parametrize("sigs", [{"keyid": "x", "sig": "y"}, "sig", 1, None])
def test_signatures_that_are_not_a_list_are_a_format_error(sigs) -> None:
    root = ed25519.Ed25519PrivateKey.generate()
    env = json.loads(_manifest([root]))
    env["signatures"] = sigs
    with pytest.raises(BundleFormatError, match="envelope unreadable"):
        bm.verify_manifest(json.dumps(env).encode(), [root.public_key()], NOW)

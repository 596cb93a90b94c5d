"""The store and provider: root-key rotation, expiry, all-or-nothing apply, USB sync."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sentinel.authority.publish import Inputs, generate_root_key
from sentinel.authority.publish import publish as _publish
from sentinel.authority.testing import (
    TEST_KDF,
    StatusRecord,
    build_test_bundle,
    sync_dir,
    test_devices,
)
from sentinel.config import TrustConfig
from sentinel.errors import BundleError, BundleFormatError, BundleSignatureError
from sentinel.trust import bundle as bm
from sentinel.trust.store import BundleStore, StoreTrust
from tests.threads import run_together

NOW = datetime(2022, 5, 1, 12, 0, tzinfo=UTC)
UNTIL = NOW + timedelta(days=30)


def publish(site, *args, **kw):  # type: ignore[no-untyped-def]
    """The publisher, sealing to the site's test device (the data_dir that syncs it)."""
    return _publish(site, *args, devices=test_devices(site), kdf=TEST_KDF, **kw)


def _inputs(status: str = "green") -> Inputs:
    return Inputs(status=[StatusRecord(status, UNTIL, "P", "XXA", "1")], revocations=[])


def test_root_key_rotation(tmp_path) -> None:
    old, new = generate_root_key(), generate_root_key("p256")
    site, data = tmp_path / "site", tmp_path / "data"
    publish(site, _inputs(), [old], now=NOW, next_root_key=new.public_key())
    assert sync_dir(data, site, old.public_key(), now=NOW).version == 1
    # v2 signed by the announced key only: accepted, and the new key takes over
    publish(site, _inputs("yellow"), [new], now=NOW)
    assert sync_dir(data, site, old.public_key(), now=NOW).version == 2
    # the old key alone no longer signs for this device
    publish(site, _inputs("red"), [old], now=NOW)
    with pytest.raises(BundleSignatureError):
        sync_dir(data, site, old.public_key(), now=NOW)
    with StoreTrust(data) as t:
        assert t.state().bundle_version == "2"
        assert t.status().lookup_document("P", "XXA", "1").status == "yellow"


def test_unannounced_key_is_refused(tmp_path) -> None:
    a, b = generate_root_key(), generate_root_key()
    publish(tmp_path / "site", _inputs(), [a], now=NOW)
    sync_dir(tmp_path / "data", tmp_path / "site", a.public_key(), now=NOW)
    publish(tmp_path / "site", _inputs("red"), [b], now=NOW)
    with pytest.raises(BundleSignatureError):
        sync_dir(tmp_path / "data", tmp_path / "site", a.public_key(), now=NOW)


def test_data_counts_as_stale_at_manifest_expiry(tmp_path) -> None:
    b = build_test_bundle(tmp_path / "site", now=NOW, expires_in=timedelta(hours=24))
    sync_dir(tmp_path / "data", b.site, b.root_public, now=NOW)
    with StoreTrust(tmp_path / "data", TrustConfig(max_data_age_hours=48)) as t:
        st = t.state()
        # last good sync NOW, but the bundle expires at NOW + 24 h: stale from then on
        assert st.updated_at == NOW + timedelta(hours=24) - st.max_age
        assert NOW + timedelta(hours=23) - st.updated_at <= st.max_age
        assert NOW + timedelta(hours=25) - st.updated_at > st.max_age


def _signed_site_with_one_part(site, root, name: str, data: bytes):  # type: ignore[no-untyped-def]
    """A v2 publisher site: correctly hashed and signed, with one part ``name`` = ``data``."""
    (site / "parts").mkdir(parents=True)
    sha = hashlib.sha256(data).hexdigest()
    (site / "parts" / sha).write_bytes(data)
    payload = bm.make_payload(
        version=2,
        issued_at=NOW,
        expires_at=NOW + timedelta(days=1),
        authority_key_id=bm.key_id(root),
        parts=[bm.PartRef(name, sha, len(data))],
        status=None,
    )
    (site / "manifest.json").write_bytes(bm.sign_manifest(payload, [root]))
    return site


def test_a_bad_part_leaves_everything_as_it_was(tmp_path) -> None:
    root = generate_root_key()
    b = build_test_bundle(
        tmp_path / "site",
        root_key=root,
        now=NOW,
        status=[StatusRecord("green", UNTIL, "P", "X", "1")],
    )
    data = tmp_path / "data"
    sync_dir(data, b.site, b.root_public, now=NOW)
    before = sorted(p.name for p in (data / "trust" / "status").iterdir())

    # a correctly hashed and signed v2 whose revocations part is not a revocation list
    site2 = _signed_site_with_one_part(tmp_path / "site2", root, "revocations", b"not json")
    with pytest.raises(BundleFormatError, match="revocations"):
        sync_dir(data, site2, b.root_public, now=NOW)
    with StoreTrust(data) as t:
        assert t.state().bundle_version == "1"
        assert t.status().lookup_document("P", "X", "1").status == "green"
        assert "BundleFormatError" in (t.store.meta("last_error") or "")
    assert sorted(p.name for p in (data / "trust" / "status").iterdir()) == before


def test_delta_only_bundle_needs_its_base(tmp_path) -> None:
    root = generate_root_key()
    site = tmp_path / "site"
    publish(site, _inputs(), [root], now=NOW)
    publish(site, _inputs("red"), [root], now=NOW, delta_only=True)
    manifest = json.loads(json.loads((site / "manifest.json").read_text())["signed"])
    assert "status" not in manifest["parts"] and manifest["delta"]["base_version"] == 1
    # a fresh device cannot use it; one on version 1 can (the USB-stick case)
    with pytest.raises(BundleError, match="onto version 1 only"):
        sync_dir(tmp_path / "fresh", site, root.public_key(), now=NOW)
    # a device that applied version 1 (served from the history) takes the delta
    shutil.copytree(site, tmp_path / "v1")
    (tmp_path / "v1" / "manifest.json").write_bytes((site / "manifests" / "1.json").read_bytes())
    sync_dir(tmp_path / "dev", tmp_path / "v1", root.public_key(), now=NOW)
    r = sync_dir(tmp_path / "dev", site, root.public_key(), now=NOW)
    assert (r.version, r.delta) == (2, True)


def _recs(entries: dict[str, str]) -> Inputs:
    return Inputs(status=[StatusRecord(v, UNTIL, "P", "XXA", k) for k, v in entries.items()])


@pytest.mark.parametrize("compact", [False, True])
def test_chained_deltas_match_a_fresh_full_apply(tmp_path, monkeypatch, compact) -> None:
    from sentinel.trust import store as store_mod

    if compact:  # every delta merges into a new base, checked against the manifest digest
        monkeypatch.setattr(store_mod, "COMPACT_MIN", 0)
        monkeypatch.setattr(store_mod, "COMPACT_RATIO", 0.0)
    root = generate_root_key()
    site, dev = tmp_path / "site", tmp_path / "dev"
    v1 = {f"A{i}": "green" for i in range(50)}
    v2 = {**v1, "A1": "red", "NEW": "yellow"}
    del v2["A2"]
    v3 = {k: s for k, s in v2.items() if k != "NEW"} | {"A2": "green", "A3": "yellow"}
    for i, entries in enumerate([v1, v2, v3], start=1):
        publish(site, _recs(entries), [root], now=NOW)
        r = sync_dir(dev, site, root.public_key(), now=NOW)
        assert (r.version, r.delta) == (i, i > 1)
    sync_dir(tmp_path / "fresh", site, root.public_key(), now=NOW)  # v3 in full
    with StoreTrust(dev) as a, StoreTrust(tmp_path / "fresh") as b:
        assert (a.store.overlay_path() is None) == compact
        for k in [*v1, "NEW", "nope"]:
            ea = a.status().lookup_document("P", "XXA", k)
            eb = b.status().lookup_document("P", "XXA", k)
            assert ea == eb
            assert (ea.status if ea else None) == v3.get(k)
        assert len(a.status()) == len(v3)
        if compact:
            assert a.store.status_path().read_bytes() == b.store.status_path().read_bytes()


@pytest.mark.parametrize(
    ("name", "junk"),
    [
        ("trust_list", b'{"not": "a trust list"}'),
        ("trust_list", b"\xff\xfe"),
        ("revocations", b"[1]"),
        ("revocations", b'{"keys": [1]}'),
        ("revocations", b'{"keys": "UCI:abababababababababababababababab"}'),  # not a list
    ],
)
def test_a_signed_part_that_does_not_parse_is_never_committed(tmp_path, name, junk) -> None:
    """Correctly hashed and signed, but not what its name says: refused before the commit,
    so a snapshot never has to parse it (the gate would stop deciding)."""
    root = generate_root_key()
    b = build_test_bundle(tmp_path / "site", root_key=root, now=NOW)
    data = tmp_path / "data"
    sync_dir(data, b.site, b.root_public, now=NOW)
    site2 = _signed_site_with_one_part(tmp_path / "site2", root, name, junk)
    with pytest.raises(BundleFormatError):
        sync_dir(data, site2, b.root_public, now=NOW)
    with StoreTrust(data) as t:
        assert t.state().bundle_version == "1"
        assert t.snapshot().trust_list is not None  # still readable, still deciding


@pytest.mark.parametrize("base", [2000, 30000])
def test_deltas_stay_an_overlay_up_to_the_compaction_threshold(tmp_path, base) -> None:
    """An overlay is merged into a new base once it holds more than 5 % of the base's
    entries (docs/bundles.md), and never below 1000 entries: 1000 changes on a base of
    2000 stay an overlay, as do 1500 on 30000; one change more compacts."""
    root = generate_root_key()
    site, dev = tmp_path / "site", tmp_path / "dev"
    keep = max(1000, base * 5 // 100)
    v1 = {f"D{i:06d}": "green" for i in range(base)}
    v2 = {**v1, **{f"D{i:06d}": "red" for i in range(keep)}}
    v3 = {**v2, f"D{keep:06d}": "yellow"}
    overlay = []
    for i, entries in enumerate([v1, v2, v3], start=1):
        publish(site, _recs(entries), [root], now=NOW)
        r = sync_dir(dev, site, root.public_key(), now=NOW)
        assert (r.version, r.delta) == (i, i > 1)
        with StoreTrust(dev) as t:
            overlay.append(t.store.overlay_path() is not None)
            for k in ("D000000", f"D{keep - 1:06d}", f"D{keep:06d}", f"D{base - 1:06d}"):
                assert t.status().lookup_document("P", "XXA", k).status == entries[k]
    assert overlay == [False, True, False]  # v2: `keep` changes kept; v3: one more, merged


def test_a_device_without_a_store_has_no_bundle_and_a_peek_makes_no_file(tmp_path) -> None:
    from sentinel.trust.store import BundleStore

    data = tmp_path / "fresh"
    assert not BundleStore.exists(data) and not BundleStore.readable(data)
    assert not data.exists()  # a peek opens nothing for writing, creates nothing
    b = build_test_bundle(tmp_path / "site", now=NOW)
    sync_dir(data, b.site, b.root_public, now=NOW)
    assert BundleStore.exists(data) and BundleStore.readable(data)


def test_a_bundle_with_the_same_status_set_keeps_its_status_files(tmp_path) -> None:
    """v2 changes only the revocations: the status set (same digest) is neither fetched
    nor rewritten — the same base file, no overlay — and lookups still answer."""
    root = generate_root_key()
    site, data = tmp_path / "site", tmp_path / "data"
    recs = [StatusRecord("red", UNTIL, "P", "XXA", "1")]
    publish(site, Inputs(status=recs, revocations=[]), [root], now=NOW)
    sync_dir(data, site, root.public_key(), now=NOW)
    status_dir = data / "trust" / "status"
    before = {p.name: p.stat().st_mtime_ns for p in status_dir.iterdir()}
    publish(site, Inputs(status=recs, revocations=["UCI:" + "cd" * 16]), [root], now=NOW)
    r = sync_dir(data, site, root.public_key(), now=NOW)
    assert r.version == 2
    assert {p.name: p.stat().st_mtime_ns for p in status_dir.iterdir()} == before
    with StoreTrust(data) as t:
        assert t.store.overlay_path() is None
        assert t.status().lookup_document("P", "XXA", "1").status == "red"
        assert t.state().bundle_version == "2"


def test_an_interrupt_inside_a_meta_write_rolls_it_back_and_goes_on_up(tmp_path) -> None:
    """Ctrl-C (a real SIGINT, tests/interrupt.py) while set_meta writes: KeyboardInterrupt
    reaches the caller, neither value is written, and the store takes the next write."""
    from sentinel.trust.store import BundleStore
    from tests.interrupt import sigint_during

    with BundleStore(tmp_path / "data") as store:
        store.set_meta(last_error="before")
        with sigint_during(store._db, "_write_meta") as landed, pytest.raises(KeyboardInterrupt):
            store.set_meta(last_error="after", last_attempt="now")
        assert len(landed) == 1  # between BEGIN and COMMIT
        assert not store._db.in_transaction
        assert (store.meta("last_error"), store.meta("last_attempt")) == ("before", None)
        store.set_meta(last_error="later")
        assert store.meta("last_error") == "later"


def _stage(plan: bm.Plan, site: Path, staging: Path) -> dict[str, Path]:
    """The parts ``plan`` fetches, copied from the publisher's folder as a sync stages them."""
    staging.mkdir()
    staged = {}
    for r in plan.fetch:
        staged[r.name] = staging / r.name
        staged[r.name].write_bytes((site / "parts" / r.sha256).read_bytes())
    return staged


def test_an_apply_whose_plan_counts_on_a_part_the_store_lacks_is_refused(tmp_path) -> None:
    """BundleStore.apply's contract: a part neither downloaded nor held is a BundleError,
    and nothing is committed (here the plan was made against a held() that lied)."""
    from sentinel.errors import BundleError as Refused
    from sentinel.trust.store import BundleStore

    b = build_test_bundle(tmp_path / "site", now=NOW, revocations=["UCI:" + "ab" * 16])
    m = bm.verify_manifest((b.site / "manifest.json").read_bytes(), [b.root_public], NOW)
    ref = m.parts["revocations"]
    plan = bm.plan_update(m, None, None, {"revocations": ref.sha256})
    assert ref not in plan.fetch  # the plan counts on the store holding it
    staged = _stage(plan, b.site, tmp_path / "staged")
    with BundleStore(tmp_path / "data") as store:
        with pytest.raises(Refused, match="revocations was neither downloaded nor held"):
            store.apply(plan, staged, now=NOW, source="test")
        assert store.current() is None and store.part("revocations") is None


@pytest.mark.parametrize("lost", ["base", "overlay"])
def test_a_device_that_lost_its_status_files_takes_the_full_set_at_the_next_sync(
    tmp_path, lost
) -> None:
    """Defect found by the mutation run: with the base status file gone (an SD card's
    fsck, a hand-made clean-up), every later bundle carrying a delta was refused with
    "delta needs the base status set" — for ever, though the manifest also offers the
    full set.  The store now holds a status set only while its files are on disk, so the
    next sync fetches the full part and the device answers again."""
    root = generate_root_key()
    site, dev = tmp_path / "site", tmp_path / "dev"
    v1 = {f"A{i}": "green" for i in range(50)}
    publish(site, _recs(v1), [root], now=NOW)
    sync_dir(dev, site, root.public_key(), now=NOW)
    publish(site, _recs({**v1, "A1": "yellow"}), [root], now=NOW)
    assert sync_dir(dev, site, root.public_key(), now=NOW).delta  # v2: base + overlay
    with StoreTrust(dev) as t:
        gone = t.store.status_path() if lost == "base" else t.store.overlay_path()
    assert gone is not None
    gone.unlink()
    # the device's service opens the store before any sync: it serves what is left (the
    # trust list, the rest of the bundle) and has no status set, instead of crashing
    with StoreTrust(dev) as t:
        assert t.status() is None
        assert t.snapshot().state.bundle_version == "2"
    publish(site, _recs({**v1, "A1": "red"}), [root], now=NOW)  # full part and delta
    r = sync_dir(dev, site, root.public_key(), now=NOW)
    assert (r.version, r.delta) == (3, False)
    with StoreTrust(dev) as t:
        assert t.status().lookup_document("P", "XXA", "A1").status == "red"
        assert t.status().lookup_document("P", "XXA", "A2").status == "green"


def test_the_status_directory_is_fsynced_after_each_status_file_rename(
    tmp_path, monkeypatch
) -> None:
    """A rename is durable only once its directory is fsynced (POSIX; ext4 happens to
    commit it with the next fsync): after the full set's and the overlay's rename into
    ``status/``, the directory itself is fsynced before the apply returns."""
    root = generate_root_key()
    site, data = tmp_path / "site", tmp_path / "data"
    status_dir = (data / "trust" / "status").resolve()
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst) -> None:  # type: ignore[no-untyped-def]
        events.append(("replace", str(Path(dst).resolve().parent)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    recs = {"1": "green"}
    publish(site, _recs(recs), [root], now=NOW)
    for step in range(2):  # the full set, then a delta kept as an overlay
        events.clear()
        sync_dir(data, site, root.public_key(), now=NOW)
        renames = [i for i, e in enumerate(events) if e == ("replace", str(status_dir))]
        assert renames, events
        assert ("fsync", str(status_dir)) in events[renames[-1] + 1 :], (step, events)
        recs[str(step + 2)] = "red"
        publish(site, _recs(recs), [root], now=NOW)


def test_a_signed_full_status_part_whose_count_disagrees_with_its_manifest_is_refused(
    tmp_path, monkeypatch
) -> None:
    """The authority's own mistake: v2's manifest, signed, says one entry more than its
    full status part holds. The store refuses it as a format error and keeps v1."""
    root = generate_root_key()
    site, data = tmp_path / "site", tmp_path / "data"
    publish(site, _recs({"1": "green"}), [root], now=NOW)
    sync_dir(data, site, root.public_key(), now=NOW)
    real = bm.StatusInfo

    def off_by_one(key_id, kdf, count, *rest):  # type: ignore[no-untyped-def]
        return real(key_id, kdf, count + 1, *rest)

    with monkeypatch.context() as mp:
        mp.setattr(bm, "StatusInfo", off_by_one)
        publish(site, _recs({"1": "red", "2": "red"}), [root], now=NOW, delta=False)
    with pytest.raises(BundleFormatError, match="count, kind or key"):
        sync_dir(data, site, root.public_key(), now=NOW)
    with StoreTrust(data) as t:
        assert t.state().bundle_version == "1"
        assert t.status().lookup_document("P", "XXA", "1").status == "green"


def test_a_full_set_that_replaces_another_leaves_only_its_own_files(tmp_path) -> None:
    """v1 (full), v2 (a delta: an overlay), v3 (full again): each commit removes the
    status files the metadata no longer names, so a device's card never fills with
    old sets (80 M entries are 1.4 GB a set)."""
    root = generate_root_key()
    site, data = tmp_path / "site", tmp_path / "data"
    status_dir = data / "trust" / "status"
    publish(site, _recs({"1": "green", "2": "green"}), [root], now=NOW)
    sync_dir(data, site, root.public_key(), now=NOW)
    first = {p.name for p in status_dir.iterdir()}
    publish(site, _recs({"1": "red", "2": "green"}), [root], now=NOW)
    assert sync_dir(data, site, root.public_key(), now=NOW).delta
    with StoreTrust(data) as t:
        named = {t.store.status_path().name, t.store.overlay_path().name}
    assert {p.name for p in status_dir.iterdir()} == named
    assert first < named  # the overlay came beside the base
    publish(site, _recs({"1": "red", "2": "yellow", "3": "green"}), [root], now=NOW, delta=False)
    assert not sync_dir(data, site, root.public_key(), now=NOW).delta
    with StoreTrust(data) as t:
        assert t.store.overlay_path() is None
        only = t.store.status_path().name
        assert t.status().lookup_document("P", "XXA", "2").status == "yellow"
    assert [p.name for p in status_dir.iterdir()] == [only]
    assert only not in named


def test_a_delta_onto_a_base_of_another_status_key_is_refused(tmp_path) -> None:
    """The held base's header names another status key than the manifest and its delta
    (a base from another lineage: restored from a backup, a rotation the device missed):
    the delta is refused as a format error, v1 stays and still answers."""
    root = generate_root_key()
    site, data = tmp_path / "site", tmp_path / "data"
    publish(site, _recs({"1": "green", "2": "green"}), [root], now=NOW)
    sync_dir(data, site, root.public_key(), now=NOW)
    with StoreTrust(data) as t:
        base = t.store.status_path()
    raw = bytearray(base.read_bytes())
    raw[16:32] = bytes(16)  # header: magic, format, kind, pad, count (u64), key id (16)
    base.write_bytes(bytes(raw))
    publish(site, _recs({"1": "red", "2": "green"}), [root], now=NOW)
    with pytest.raises(BundleFormatError, match="another status key than its base"):
        sync_dir(data, site, root.public_key(), now=NOW)
    with StoreTrust(data) as t:
        assert t.state().bundle_version == "1"
        assert t.store.overlay_path() is None


def test_a_compaction_onto_a_damaged_base_is_refused_and_leaves_no_file(
    tmp_path, monkeypatch
) -> None:
    """Status bytes of the held base flipped on the card: the compacted set (base +
    delta, streamed into a new file) cannot hash to the manifest's status.sha256, so the
    apply is refused as a hash error, its half-written file removed, v1 kept."""
    from sentinel.errors import BundleHashError
    from sentinel.trust import store as store_mod

    monkeypatch.setattr(store_mod, "COMPACT_MIN", 0)
    monkeypatch.setattr(store_mod, "COMPACT_RATIO", 0.0)
    root = generate_root_key()
    site, data = tmp_path / "site", tmp_path / "data"
    status_dir = data / "trust" / "status"
    v1 = {str(i): "green" for i in range(20)}
    publish(site, _recs(v1), [root], now=NOW)
    sync_dir(data, site, root.public_key(), now=NOW)
    with StoreTrust(data) as t:
        base = t.store.status_path()
    before = {p.name for p in status_dir.iterdir()}
    raw = bytearray(base.read_bytes())
    # page 1, rows 0 and 1: the byte after each 12-byte tag (status); the delta changes one
    # entry, which may be either row (the tags are keyed), so the other stays damaged
    for row in (0, 1):
        raw[4096 + 17 * row + 12] ^= 0x01
    base.write_bytes(bytes(raw))
    publish(site, _recs({**v1, "5": "red"}), [root], now=NOW)
    with pytest.raises(BundleHashError, match="after the delta does not match"):
        sync_dir(data, site, root.public_key(), now=NOW)
    assert {p.name for p in status_dir.iterdir()} == before
    with StoreTrust(data) as t:
        assert t.state().bundle_version == "1"


def test_a_base_that_vanishes_between_plan_and_apply_refuses_the_delta_then_heals(
    tmp_path, monkeypatch
) -> None:
    """The plan saw the base status file (so it fetched only the delta), then the file
    went (an fsck, a clean-up by hand) before the apply: the delta is refused with its own
    error, not a stray FileNotFoundError; the next sync sees no base and takes v2 in full."""
    from sentinel.errors import BundleError
    from sentinel.trust.store import BundleStore

    root = generate_root_key()
    site, data = tmp_path / "site", tmp_path / "data"
    publish(site, _recs({"1": "green", "2": "green"}), [root], now=NOW)
    sync_dir(data, site, root.public_key(), now=NOW)
    publish(site, _recs({"1": "red", "2": "green"}), [root], now=NOW)
    real_held = BundleStore.held

    def held_then_lost(self):  # type: ignore[no-untyped-def]
        out = real_held(self)
        path = self.status_path()
        if path is not None and path.exists():
            path.unlink()
        return out

    with monkeypatch.context() as mp:
        mp.setattr(BundleStore, "held", held_then_lost)
        with pytest.raises(BundleError, match="needs the base status set"):
            sync_dir(data, site, root.public_key(), now=NOW)
    r = sync_dir(data, site, root.public_key(), now=NOW)
    assert (r.version, r.delta) == (2, False)
    with StoreTrust(data) as t:
        assert t.status().lookup_document("P", "XXA", "1").status == "red"


def test_a_signed_delta_part_that_holds_a_full_set_is_refused(tmp_path, monkeypatch) -> None:
    """The authority's mistake, signed: v2's status_delta part is written with the full
    kind (its entries, its key, all correct). A device composes only deltas into its
    overlay: refused as a format error, v1 kept."""
    from sentinel.authority import publish as pub

    root = generate_root_key()
    site, data = tmp_path / "site", tmp_path / "data"
    publish(site, _recs({"1": "green", "2": "green"}), [root], now=NOW)
    sync_dir(data, site, root.public_key(), now=NOW)
    real_diff = pub.ss.diff

    def full_kind(old, new):  # type: ignore[no-untyped-def]
        d = real_diff(old, new)
        return pub.ss.Columns(d.keys, d.status, d.until, pub.ss.KIND_FULL)

    with monkeypatch.context() as mp:
        mp.setattr(pub.ss, "diff", full_kind)
        publish(site, _recs({"1": "red", "2": "green"}), [root], now=NOW)
    with pytest.raises(BundleFormatError, match="not a delta of this status key"):
        sync_dir(data, site, root.public_key(), now=NOW)
    with StoreTrust(data) as t:
        assert t.state().bundle_version == "1"
        assert t.status().lookup_document("P", "XXA", "1").status == "green"


def _disk_full_at_commit(mp: pytest.MonkeyPatch) -> None:
    """The apply's metadata write (the one naming the manifest, inside its transaction)
    fails as a full disk would, after its rows are written; later meta writes work."""
    from sentinel.trust.store import BundleStore

    real_write = BundleStore._write_meta

    def disk_full(self, values):  # type: ignore[no-untyped-def]
        real_write(self, values)
        if "manifest" in values:
            raise OSError(28, "No space left on device")

    mp.setattr(BundleStore, "_write_meta", disk_full)


def test_a_commit_that_fails_is_rolled_back_and_raised(tmp_path, monkeypatch) -> None:
    """The metadata write fails inside the apply's transaction (a full disk, an I/O
    error): the transaction is rolled back and the error reaches the sync, never a
    reported success with v1 still in force."""

    root = generate_root_key()
    site, data = tmp_path / "site", tmp_path / "data"
    publish(site, _recs({"1": "green"}), [root], now=NOW)
    sync_dir(data, site, root.public_key(), now=NOW)
    publish(site, _recs({"1": "red"}), [root], now=NOW)
    with monkeypatch.context() as mp:
        _disk_full_at_commit(mp)
        with pytest.raises(OSError, match="No space left"):
            sync_dir(data, site, root.public_key(), now=NOW)
    with StoreTrust(data) as t:
        assert t.state().bundle_version == "1"  # the half-written meta rolled back
        assert t.status().lookup_document("P", "XXA", "1").status == "green"


def test_the_apply_lock_is_held_across_open_files(tmp_path) -> None:
    """``exclusive()`` takes an flock on ``apply.lock``: while it is held, another open
    of the file (another sync process) cannot take it, and can once it is released."""
    import fcntl

    from sentinel.trust.store import BundleStore

    with BundleStore(tmp_path / "data") as store:
        lock = store.root / "apply.lock"
        with store.exclusive(), lock.open("a") as other, pytest.raises(BlockingIOError):
            fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with lock.open("a") as other:
            fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # free again


def test_an_old_status_file_that_cannot_be_removed_is_logged(tmp_path, caplog) -> None:
    """A leftover in ``status/`` that will not go (here a directory, as an fsck might
    leave): the clean-up after the commit warns and carries on, the new version in force."""
    import logging

    root = generate_root_key()
    site, data = tmp_path / "site", tmp_path / "data"
    publish(site, _recs({"1": "green"}), [root], now=NOW)
    sync_dir(data, site, root.public_key(), now=NOW)
    stuck = data / "trust" / "status" / "lost+found"
    stuck.mkdir()
    publish(site, _recs({"1": "red"}), [root], now=NOW, delta=False)
    with caplog.at_level(logging.WARNING, logger="sentinel.trust.store"):
        assert sync_dir(data, site, root.public_key(), now=NOW).version == 2
    assert stuck.is_dir()
    assert any("cannot remove old status file" in r.getMessage() for r in caplog.records)
    with StoreTrust(data) as t:
        assert t.status().lookup_document("P", "XXA", "1").status == "red"


def test_the_store_module_names_only_what_it_has() -> None:
    """``StoreTrust`` is re-exported lazily (PEP 562); any other missing name is an
    AttributeError, as for any module (hasattr, getattr with a default rely on it)."""
    from sentinel.trust import store as store_mod
    from sentinel.trust.applied import StoreTrust as Real

    assert store_mod.StoreTrust is Real
    assert not hasattr(store_mod, "NoSuchThing")
    with pytest.raises(AttributeError, match="NoSuchThing"):
        _ = store_mod.NoSuchThing


def _meeting(monkeypatch, cls, name: str):  # type: ignore[no-untyped-def]
    """Patch ``cls.name`` to run, then wait (1 s at most) for a second thread to get there
    too: two threads inside one store call at once meet; a lock that serialises them
    makes the first wait out the timeout and go on alone."""
    import contextlib
    import threading

    barrier = threading.Barrier(2, timeout=1.0)
    real = getattr(cls, name)

    def meet(self, *a, **kw):  # type: ignore[no-untyped-def]
        out = real(self, *a, **kw)
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait()
        return out

    monkeypatch.setattr(cls, name, meet)


def test_two_threads_writing_meta_at_once_are_two_transactions(tmp_path, monkeypatch) -> None:
    """The store's one SQLite connection is shared by the sync thread and the web thread;
    ``set_meta`` holds the store lock across BEGIN ... COMMIT, so a second writer waits
    instead of beginning a transaction inside the first (OperationalError) or committing
    the first's half."""
    from sentinel.trust.store import BundleStore

    with BundleStore(tmp_path / "data") as store:
        _meeting(monkeypatch, BundleStore, "_write_meta")
        got = run_together(lambda: store.set_meta(a="1"), lambda: store.set_meta(b="2"))
        assert got == [None, None], got
        assert (store.meta("a"), store.meta("b")) == ("1", "2")


def test_after_a_failed_commit_the_same_store_still_writes(tmp_path, monkeypatch) -> None:
    """A long-running device keeps one store open: after an apply whose commit failed, the
    store's connection has no transaction left open (it was rolled back), so the next
    write on it works and v1 is what it reads."""
    from sentinel.authority.testing import enroll_test_device
    from sentinel.trust.store import BundleStore
    from sentinel.trust.sync import DirSource, Syncer

    root = generate_root_key()
    site, data = tmp_path / "site", tmp_path / "data"
    publish(site, _recs({"1": "green"}), [root], now=NOW)
    sync_dir(data, site, root.public_key(), now=NOW)
    publish(site, _recs({"1": "red"}), [root], now=NOW)
    enroll_test_device(data, site)
    with BundleStore(data) as store:
        with monkeypatch.context() as mp:
            _disk_full_at_commit(mp)
            with pytest.raises(OSError, match="No space left"):
                Syncer(store, DirSource(site), root_key=root.public_key(), clock=lambda: NOW).sync()
        assert not store._db.in_transaction
        store.set_meta(note="after the failure")
        assert (store.meta("note"), store.meta("version")) == ("after the failure", "1")


def test_a_sync_leaves_no_file_descriptor_open_and_records_when_it_applied(tmp_path) -> None:
    """Each directory fsynced during an apply is closed again (a sentinel syncs for months:
    one descriptor a sync would exhaust its limit), and the store records the apply's
    own time, not the time someone later asks."""
    root = generate_root_key()
    site, data = tmp_path / "site", tmp_path / "data"
    recs = {"1": "green"}
    publish(site, _recs(recs), [root], now=NOW)
    sync_dir(data, site, root.public_key(), now=NOW)  # the store's files exist from here
    before = len(os.listdir("/proc/self/fd"))
    for step in range(3):
        recs[str(step + 2)] = "red"
        publish(site, _recs(recs), [root], now=NOW)
        sync_dir(data, site, root.public_key(), now=NOW + timedelta(minutes=step + 1))
    assert len(os.listdir("/proc/self/fd")) == before
    from sentinel.trust.store import BundleStore

    with BundleStore(data) as store:
        applied = store.current()
        assert applied is not None and applied.applied_at == NOW + timedelta(minutes=3)


def test_a_power_cut_after_the_apply_still_shows_it_as_the_last_good_sync(
    tmp_path, monkeypatch
) -> None:
    """The apply's commit records the good sync with the bundle: a power cut before the
    sync's own bookkeeping (``_fresh``) leaves ``sentinel status`` showing this sync, not
    the one before."""
    from sentinel.trust import sync as sync_mod
    from sentinel.trust.store import BundleStore

    root = generate_root_key()
    site, data = tmp_path / "site", tmp_path / "data"
    recs = {"1": "green"}
    publish(site, _recs(recs), [root], now=NOW)
    sync_dir(data, site, root.public_key(), now=NOW)
    recs["2"] = "red"
    publish(site, _recs(recs), [root], now=NOW)
    later = NOW + timedelta(hours=2)
    monkeypatch.setattr(sync_mod.Syncer, "_fresh", lambda *_a, **_k: None)  # the cut
    sync_dir(data, site, root.public_key(), now=later)
    with BundleStore(data) as store:
        assert store.meta("last_good_sync") == later.isoformat()
        assert store.meta("last_error") is None


@pytest.mark.parametrize(
    "data", [b"{}", b'{"keys": "UCI:ab"}', b'{"keys": [1]}', b"[]", b"not json"]
)
def test_a_revocations_part_of_the_wrong_shape_is_a_format_error(data: bytes) -> None:
    from sentinel.trust.store import parse_revocations

    with pytest.raises(BundleFormatError, match="revocations part unreadable"):
        parse_revocations(data)


def test_a_delta_kept_as_an_overlay_is_what_the_device_says_it_holds(tmp_path) -> None:
    """After a delta is kept as an overlay, the device offers the new set's digest as its
    base (``held``): the publisher's next delta is built on it; the old digest would make
    every later sync fetch the full set."""
    from sentinel.trust.store import BundleStore

    root = generate_root_key()
    site, data = tmp_path / "site", tmp_path / "data"
    recs = {str(i): "green" for i in range(50)}
    publish(site, _recs(recs), [root], now=NOW)
    sync_dir(data, site, root.public_key(), now=NOW)
    recs["7"] = "red"
    publish(site, _recs(recs), [root], now=NOW)
    sync_dir(data, site, root.public_key(), now=NOW)
    with BundleStore(data) as store:
        cur = store.current()
        assert cur is not None and cur.manifest.status is not None
        assert store.meta("overlay_file")  # kept as an overlay, not compacted
        assert store.held()["status"] == cur.manifest.status.sha256


def test_the_bundle_applied_entry_names_the_source_and_every_part_by_its_bytes(tmp_path) -> None:
    """The audit entry an auditor reads: where the bundle came from, and each part's
    SHA-256 as hashlib computes it from the publisher's own files."""
    import hashlib
    import json

    from sentinel.authority.testing import StatusRecord, sync_dir
    from sentinel.journal.audit import open_audit

    listed = StatusRecord("red", NOW + timedelta(days=30), "I", "CHN", "110105198307154282")
    b = build_test_bundle(tmp_path / "site", now=NOW, status=[listed])
    sync_dir(tmp_path / "data", b.site, b.root_public, now=NOW)
    with open_audit(tmp_path / "data") as a:
        (entry,) = [e for e in a.entries() if e["kind"] == "bundle_applied"]
    details = json.loads(entry["details"])
    m = bm.parse_stored((b.site / "manifest.json").read_bytes())
    files = {
        name: hashlib.sha256((b.site / "parts" / ref.sha256).read_bytes()).hexdigest()
        for name, ref in m.parts.items()
    }
    assert details["parts"] == files and "status" in files
    assert details["source"] == f"dir:{b.site}"
    assert (details["version"], details["previous_version"], details["delta"]) == (1, None, False)
    assert details["status_entries"] == 1 and details["status_sha256"] == m.status.sha256


def test_an_apply_clears_the_last_refusal_in_its_own_commit(tmp_path) -> None:
    """A crash right after the apply's commit (before the syncer records the good sync)
    must not leave the kiosk showing the refusal the new bundle replaced."""
    from sentinel.trust.store import BundleStore

    b = build_test_bundle(tmp_path / "site", now=NOW, revocations=["UCI:" + "ab" * 16])
    m = bm.verify_manifest((b.site / "manifest.json").read_bytes(), [b.root_public], NOW)
    plan = bm.plan_update(m, None, None, {})
    staged = _stage(plan, b.site, tmp_path / "staged")
    with BundleStore(tmp_path / "data") as store:
        store.set_meta(last_error="bundle expired")
        store.apply(plan, staged, now=NOW, source="dir:test")
        assert store.meta("last_error") is None
        assert store.meta("last_good_sync") == NOW.isoformat()


def test_a_second_rotation_announced_keeps_the_key_that_took_over(tmp_path) -> None:
    """old announces new, new takes over, then new announces a third key: the device keeps
    trusting new (not the old key its config still pins) until the third one signs."""
    old, new, third = generate_root_key(), generate_root_key(), generate_root_key()
    site, data = tmp_path / "site", tmp_path / "data"
    publish(site, _inputs(), [old], now=NOW, next_root_key=new.public_key())
    assert sync_dir(data, site, old.public_key(), now=NOW).version == 1
    publish(site, _inputs("yellow"), [new], now=NOW)
    assert sync_dir(data, site, old.public_key(), now=NOW).version == 2
    publish(site, _inputs("red"), [new], now=NOW, next_root_key=third.public_key())
    assert sync_dir(data, site, old.public_key(), now=NOW).version == 3
    with BundleStore(data) as store:
        assert store.meta("root_key") == bm.public_pem(new.public_key()).decode()
        assert store.meta("root_key_next") == bm.public_pem(third.public_key()).decode()
    publish(site, _inputs("green"), [old], now=NOW)  # the first key is long retired
    with pytest.raises(BundleSignatureError):
        sync_dir(data, site, old.public_key(), now=NOW)
    publish(site, _inputs("green"), [third], now=NOW)
    assert sync_dir(data, site, old.public_key(), now=NOW).version == 5


def test_an_announced_key_takes_over_only_when_it_signs(tmp_path) -> None:
    """old announces new; a later bundle still signed by old (the authority has not
    switched yet) keeps old as the device's root, and the announcement stays pending."""
    old, new = generate_root_key(), generate_root_key()
    site, data = tmp_path / "site", tmp_path / "data"
    publish(site, _inputs(), [old], now=NOW, next_root_key=new.public_key())
    assert sync_dir(data, site, old.public_key(), now=NOW).version == 1
    publish(site, _inputs("yellow"), [old], now=NOW, next_root_key=new.public_key())
    assert sync_dir(data, site, old.public_key(), now=NOW).version == 2
    with BundleStore(data) as store:
        assert store.meta("root_key") in (None, bm.public_pem(old.public_key()).decode())
        assert store.meta("root_key_next") == bm.public_pem(new.public_key()).decode()
    publish(site, _inputs("red"), [old], now=NOW)  # old still signs: accepted
    assert sync_dir(data, site, old.public_key(), now=NOW).version == 3

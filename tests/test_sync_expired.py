"""An expired (frozen) bundle is refused by every sync path: HTTP and a USB folder.

The manifest expiry is checked with the device's clock at sync time, not only by
``verify_manifest`` in isolation: a replayed, expired bundle never becomes current.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sentinel.authority import dcc_issue as di
from sentinel.authority.publish import generate_root_key
from sentinel.authority.testing import BundleServer, build_test_bundle
from sentinel.errors import BundleError
from sentinel.trust.store import BundleStore
from sentinel.trust.sync import DirSource, HttpSource, Syncer, finish_bundle_audit

NOW = datetime(2022, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def dsc() -> di.IssuerKey:
    return di.make_signer(
        "XX",
        not_before=datetime(2021, 1, 1, tzinfo=UTC),
        not_after=datetime(2030, 1, 1, tzinfo=UTC),
    )


@pytest.mark.parametrize("path", ["http", "folder"])
def test_expired_bundle_is_refused_on_every_sync_path(
    path: str, tmp_path: Path, dsc: di.IssuerKey
) -> None:
    root = generate_root_key()
    site = tmp_path / "site"
    build_test_bundle(site, signers=[dsc.der], now=NOW, root_key=root, expires_in=timedelta(days=2))
    server = BundleServer(site) if path == "http" else None
    source = HttpSource(server.url, timeout_s=5) if server else DirSource(site)
    store = BundleStore(tmp_path / "data")
    try:
        fresh = Syncer(store, source, root_key=root.public_key(), clock=lambda: NOW)
        assert fresh.sync().version == 1  # valid at NOW
        store2 = BundleStore(tmp_path / "data2")
        late = Syncer(
            store2, source, root_key=root.public_key(), clock=lambda: NOW + timedelta(days=3)
        )
        with pytest.raises(BundleError, match="expire"):
            late.sync()
        assert store2.current() is None  # nothing applied
        store2.close()
    finally:
        store.close()
        if server:
            source.close()  # type: ignore[union-attr]
            server.close()


def _ref(data: bytes):  # type: ignore[no-untyped-def]
    import hashlib

    from sentinel.trust import bundle as bm

    return bm.PartRef("trust_list", hashlib.sha256(data).hexdigest(), len(data))


def test_a_part_cut_short_is_named_as_such(tmp_path: Path) -> None:
    from sentinel.errors import BundleHashError
    from sentinel.trust.sync import _check_stream

    data = b"x" * 1000
    assert _check_stream(_ref(data), [data[:500], data[500:]], tmp_path / "ok") == 1000
    with pytest.raises(BundleHashError, match="cut short"):
        _check_stream(_ref(data), [data[:600]], tmp_path / "short")
    with pytest.raises(BundleHashError, match="larger than"):
        _check_stream(_ref(data), [data, b"y"], tmp_path / "long")


def test_a_device_that_cannot_write_the_part_says_so(tmp_path: Path) -> None:
    """The device's own disk, not the source: a missing folder, a full disk (/dev/full)."""
    from sentinel.trust.sync import DeviceWriteError, _check_stream

    data = b"x" * 1000
    with pytest.raises(DeviceWriteError, match="cannot write"):
        _check_stream(_ref(data), [data], tmp_path / "no" / "such" / "dir" / "part")
    if Path("/dev/full").exists():
        with pytest.raises(DeviceWriteError, match="on the device"):
            _check_stream(_ref(data), [data], Path("/dev/full"))


def test_a_disk_that_takes_part_of_a_chunk_is_a_write_error_not_a_short_part(
    tmp_path: Path,
) -> None:
    """A nearly full disk takes the first bytes of a write and refuses the rest: the part
    must not end short on disk while its hash (of the bytes received) still matches."""
    from sentinel.trust.sync import DeviceWriteError, _check_stream
    from tests.smallfs import fill, tmpfs

    data = bytes(range(256)) * 4096  # 1 MiB, one chunk
    with tmpfs(tmp_path / "m", "2m") as m:
        fill(m, 256 * 1024)
        with pytest.raises(DeviceWriteError, match="on the device"):
            _check_stream(_ref(data), [data], m / "part")


def test_download_deadline_grows_with_the_declared_size() -> None:
    """D6: timeout plus the size at 16 KiB/s, so a 1.6 MB part may take 100 s more."""
    import time

    from sentinel.trust.sync import _deadline

    t0 = time.monotonic()
    d = _deadline(10.0, 16 * 1024 * 100) - t0
    assert 110.0 <= d < 111.0


def test_a_good_sync_clears_the_last_error_records_freshness_and_leaves_no_staging(
    tmp_path: Path, dsc: di.IssuerKey
) -> None:
    root = generate_root_key()
    site = tmp_path / "site"
    build_test_bundle(site, signers=[dsc.der], now=NOW, root_key=root)
    store = BundleStore(tmp_path / "data")
    try:
        broken = Syncer(
            store, DirSource(tmp_path / "nowhere"), root_key=root.public_key(), clock=lambda: NOW
        )
        with pytest.raises(BundleError):
            broken.sync()
        assert store.meta("last_error")
        later = NOW + timedelta(hours=1)
        good = Syncer(store, DirSource(site), root_key=root.public_key(), clock=lambda: later)
        assert good.sync().outcome == "applied"
        assert store.meta("last_error") is None  # the refusal is history now
        assert store.meta("last_good_sync") == later.isoformat()
        assert store.meta("fresh_at") == NOW.isoformat()  # the manifest's signed issue time
        assert store.meta("audit_pending") is None  # the audit entry was delivered
        assert finish_bundle_audit(store) is False  # so nothing is owed
        assert not store.staging.exists() or not any(store.staging.iterdir())
        again = Syncer(store, DirSource(site), root_key=root.public_key(), clock=lambda: later)
        assert again.sync().outcome == "up_to_date"
    finally:
        store.close()
    from sentinel.journal.audit import open_audit

    with open_audit(tmp_path / "data") as log:
        applied = [e for e in log.entries() if e["kind"] == "bundle_applied"]
    assert len(applied) == 1  # once, not again at the up-to-date sync


def test_an_oversized_manifest_on_a_stick_is_a_format_error(tmp_path: Path) -> None:
    from sentinel.errors import BundleFormatError
    from sentinel.trust import bundle as bm

    stick = tmp_path / "stick"
    stick.mkdir()
    (stick / "manifest.json").write_bytes(b" " * (bm.MAX_MANIFEST_BYTES + 1))
    with pytest.raises(BundleFormatError, match="larger than its cap"):
        DirSource(stick).manifest(None)


def test_a_signed_timestamp_on_a_stick_refreshes_the_data_age(tmp_path: Path) -> None:
    """The USB path reads the publisher's signed timestamp like the HTTP path: a stick
    whose bundle is unchanged but whose timestamp is newer moves the data age forward."""
    from sentinel.trust.timestamp import write_timestamp

    b = build_test_bundle(tmp_path / "stick", now=NOW)
    with BundleStore(tmp_path / "data") as store:
        clock = [NOW]
        syncer = Syncer(store, DirSource(b.site), root_key=b.root_public, clock=lambda: clock[0])
        assert syncer.sync().outcome == "applied"
        later = NOW + timedelta(days=2)
        write_timestamp(b.site, [b.root_key], now=later)
        clock[0] = later + timedelta(minutes=5)
        assert syncer.sync().outcome == "up_to_date"
        assert store.meta("timestamp_issued_at") == later.isoformat()
        assert store.meta("fresh_at") == later.isoformat()
        # an older stick (its timestamp a day before): the data age never moves back
        write_timestamp(b.site, [b.root_key], now=NOW + timedelta(days=1))
        clock[0] = later + timedelta(minutes=10)
        syncer.sync()
        assert store.meta("fresh_at") == later.isoformat()


def test_a_timestamp_for_another_manifest_does_not_move_the_data_age(tmp_path: Path) -> None:
    """A signed timestamp vouches for one manifest (version and payload digest): one made
    for another bundle of the same version, laid beside this one, is recorded as read
    but leaves the data age at this manifest's own issue time."""
    from sentinel.trust.timestamp import sign_timestamp

    b = build_test_bundle(tmp_path / "stick", now=NOW)
    other = build_test_bundle(tmp_path / "other", now=NOW, root_key=b.root_key)
    later = NOW + timedelta(days=2)
    raw = sign_timestamp((other.site / "manifest.json").read_bytes(), [b.root_key], now=later)
    (b.site / "timestamp.json").write_bytes(raw)
    with BundleStore(tmp_path / "data") as store:
        clock = later + timedelta(minutes=5)
        syncer = Syncer(store, DirSource(b.site), root_key=b.root_public, clock=lambda: clock)
        assert syncer.sync().outcome == "applied"
        assert store.meta("fresh_at") == NOW.isoformat()

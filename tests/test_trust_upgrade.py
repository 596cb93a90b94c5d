"""A device upgraded from a release with an older bundle format (sentinel-bundle/1 before
the status key was sealed to devices) still syncs: the old bundle is not served, the next
sync applies a full bundle, and the applied version stays the floor for rollbacks.

Before the fix, ``BundleStore.current()`` raised "manifest: format is not
sentinel-bundle/2" inside every sync: an upgraded device could never sync again
(found by scripts/try-install.sh's upgrade stage).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sentinel.authority.publish import generate_root_key
from sentinel.authority.testing import build_test_bundle, sync_dir
from sentinel.config import TrustConfig
from sentinel.errors import BundleRollbackError
from sentinel.gate.selftest import FAIL, check_data
from sentinel.trust import bundle as bm
from sentinel.trust.store import BundleStore, StoreTrust

NOW = datetime.now(UTC)


def _as_older_release_left_it(data: Path) -> None:
    """The stored manifest as a release with format sentinel-bundle/1 wrote it."""
    with BundleStore(data) as store:
        env = json.loads(store.meta("manifest") or "")
        payload = json.loads(env["signed"])
        payload["format"] = "sentinel-bundle/1"
        env["signed"] = json.dumps(payload)
        store.set_meta(manifest=json.dumps(env))


def test_a_bundle_of_an_older_format_is_replaced_by_the_next_sync(tmp_path: Path) -> None:
    root = generate_root_key()
    site, data = tmp_path / "site", tmp_path / "data"
    build_test_bundle(site, root_key=root, now=NOW, version=4)
    sync_dir(data, site, root.public_key(), now=NOW)
    _as_older_release_left_it(data)

    assert BundleStore.exists(data) and not BundleStore.readable(data)
    with BundleStore(data) as store:
        assert store.current() is None and store.applied_version() == 4
    trust = StoreTrust(data, TrustConfig())
    try:
        assert trust.state().bundle_version == ""  # nothing served from the old bundle
        # and the self-test says so (it said "local trust file, no age limit": PASS)
        check = check_data(trust, NOW)
        assert (check.name, check.status) == ("data", FAIL), check
        assert "sentinel sync" in check.detail
    finally:
        trust.close()

    # The authority (upgraded too) publishes its next version: the device takes it whole.
    build_test_bundle(site, root_key=root, now=NOW + timedelta(minutes=1), version=5)
    result = sync_dir(data, site, root.public_key(), now=NOW + timedelta(minutes=1))
    assert result.version == 5
    assert BundleStore.readable(data)
    trust = StoreTrust(data, TrustConfig())
    try:
        assert trust.state().bundle_version == "5"
    finally:
        trust.close()


def test_the_older_bundles_version_is_still_the_rollback_floor(tmp_path: Path) -> None:
    root = generate_root_key()
    data = tmp_path / "data"
    build_test_bundle(tmp_path / "site", root_key=root, now=NOW, version=7)
    sync_dir(data, tmp_path / "site", root.public_key(), now=NOW)
    _as_older_release_left_it(data)
    # a replayed, older signed bundle (version 6) is not taken just because the applied
    # one is in an older format
    old = tmp_path / "old-site"
    build_test_bundle(old, root_key=root, now=NOW, version=6)
    with pytest.raises(BundleRollbackError, match="older than the applied version 7"):
        sync_dir(data, old, root.public_key(), now=NOW)


def test_format_helpers() -> None:
    assert bm.is_older_format("sentinel-bundle/1")
    assert not bm.is_older_format(bm.FORMAT)
    assert not bm.is_older_format("sentinel-bundle/9")
    assert not bm.is_older_format("other/1") and not bm.is_older_format(None)
    assert bm.stored_format(b"not json") is None
    assert bm.stored_format(json.dumps({"signed": json.dumps({"format": "x/1"})}).encode()) == (
        "x/1"
    )

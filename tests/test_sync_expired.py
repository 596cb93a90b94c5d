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
from sentinel.trust.sync import DirSource, HttpSource, Syncer

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

"""D4 of the security review: the status set is private by design.

The key that salts every lookup tag is not on the public site (it was in manifest.json
and index.json): it reaches each enrolled device sealed to that device's seal key, and
the tags are a memory-hard KDF (Argon2id) so a stolen device costs one KDF per guess.
"""

from __future__ import annotations

import base64
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sentinel import enroll
from sentinel.authority.publish import Inputs, generate_root_key, publish
from sentinel.authority.testing import StatusRecord, build_test_bundle, sync_dir, test_devices
from sentinel.errors import BundleFormatError, ConfigError
from sentinel.journal.audit import load_or_create_device_key
from sentinel.trust import bundle as bm
from sentinel.trust import sealing
from sentinel.trust import statusset as ss
from sentinel.trust.store import StoreTrust

NOW = datetime(2022, 5, 1, 12, 0, tzinfo=UTC)
UNTIL = NOW + timedelta(days=30)
LISTED = StatusRecord("red", UNTIL, "I", "CHN", "110105198307154282")


def test_the_public_site_holds_no_status_key(tmp_path: Path) -> None:
    site = tmp_path / "site"
    publish(
        site, Inputs(status=[LISTED]), [generate_root_key()], now=NOW, devices=test_devices(site)
    )
    state = json.loads((tmp_path / "site.authority" / "status_key.json").read_text())
    key = base64.b64decode(state["key"])
    forms = [key, base64.b64encode(key), key.hex().encode()]
    for p in site.rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            assert not any(f in data for f in forms), p
    m = bm.parse_stored((site / "manifest.json").read_bytes())
    assert m.status is not None and m.status.key_id == state["key_id"]
    assert dict(m.status.kdf) == ss.DEFAULT_KDF  # memory-hard unless the authority says not
    assert (tmp_path / "site.authority").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "site.authority" / "status_key.json").stat().st_mode & 0o777 == 0o600


def test_only_enrolled_devices_can_look_up(tmp_path: Path, caplog) -> None:
    site = tmp_path / "site"
    b = build_test_bundle(site, status=[LISTED], now=NOW)
    sync_dir(tmp_path / "enrolled", site, b.root_public, now=NOW)
    with StoreTrust(tmp_path / "enrolled") as t:
        entry = t.status().lookup_document("ID", "CHN", "110105198307154282")
        assert entry is not None and entry.status == "red"
    stranger = tmp_path / "stranger"
    sealing.load_or_create_seal_key(stranger)  # a device the authority never enrolled
    sync_dir(stranger, site, b.root_public, now=NOW)
    with caplog.at_level(logging.ERROR), StoreTrust(stranger) as t:
        assert t.status() is None  # the set is there, but nothing on this device opens it
    assert "sealed to other devices" in caplog.text


def test_a_manifest_with_the_key_in_clear_is_refused() -> None:
    root = generate_root_key()
    payload = bm.make_payload(
        version=1,
        issued_at=NOW,
        expires_at=UNTIL,
        authority_key_id=bm.key_id(root),
        parts=[bm.PartRef("status", "a" * 64, 1, bm.ZLIB, 1, "b" * 64)],
        status=bm.StatusInfo("c" * 32, ss.CHEAP_KDF, 1, "d" * 64, 1),
    )
    payload["status"]["key"] = base64.b64encode(b"k" * 32).decode()
    raw = bm.sign_manifest(payload, [root])
    with pytest.raises(BundleFormatError, match="in clear"):
        bm.verify_manifest(raw, [root.public_key()], NOW)


@pytest.mark.parametrize(
    "kdf",
    [
        {"alg": "argon2id", "m_kib": 1 << 20, "t": 1, "p": 1},  # 1 GiB: a device would thrash
        {"alg": "argon2id", "m_kib": 16384, "t": 0, "p": 1},
        {"alg": "argon2id", "m_kib": 16384, "t": 1, "p": 1, "x": 1},
        {"alg": "sha1"},
        [],
    ],
)
def test_tag_function_parameters_are_bounded(kdf) -> None:
    with pytest.raises(BundleFormatError):
        ss.check_kdf(kdf)


def test_a_status_set_needs_an_enrolled_device(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="enrolled devices"):
        publish(tmp_path / "site", Inputs(status=[LISTED]), [generate_root_key()], now=NOW)


def test_enrollment_carries_a_signed_seal_key(tmp_path: Path) -> None:
    key = load_or_create_device_key(tmp_path / "device_key.pem")
    seal = sealing.load_or_create_seal_key(tmp_path).public_key()
    req = enroll.make_request(key, "dev-1", "venue-1", "gate-1", seal)
    e = enroll.verify_request(req)
    assert base64.b64decode(e.seal_key) == seal.public_bytes_raw()
    doc = json.loads(req)
    other = sealing.load_or_create_seal_key(tmp_path / "other").public_key()
    doc["seal_key"] = base64.b64encode(other.public_bytes_raw()).decode()  # swapped in transit
    with pytest.raises(enroll.EnrollmentError, match="signature"):
        enroll.verify_request(json.dumps(doc).encode())
    assert (tmp_path / sealing.SEAL_KEY_FILE).stat().st_mode & 0o777 == 0o600


def test_a_device_never_enrolled_takes_the_bundle_but_cannot_open_its_status_set(
    tmp_path: Path,
) -> None:
    """No seal key on the device at all: the bundle applies (its trust list and rules
    serve), and only the status set stays closed to it."""
    from sentinel.trust.store import BundleStore
    from sentinel.trust.sync import DirSource, Syncer

    site = tmp_path / "site"
    b = build_test_bundle(site, status=[LISTED], now=NOW)
    with BundleStore(tmp_path / "bare") as store:
        syncer = Syncer(store, DirSource(site), root_key=b.root_public, clock=lambda: NOW)
        assert syncer.sync().outcome == "applied"
    assert not (tmp_path / "bare" / sealing.SEAL_KEY_FILE).exists()
    with StoreTrust(tmp_path / "bare") as t:
        assert t.status() is None


def test_a_device_that_lost_its_status_files_rebuilds_them_from_the_next_bundle(
    tmp_path: Path,
) -> None:
    """The status files are gone (a disk repaired, a file deleted) while the store still
    records the set's digest: the next bundle with the same set writes them again, and
    lookups answer."""

    site, dev = tmp_path / "site", tmp_path / "dev"
    root = generate_root_key()
    b = build_test_bundle(site, status=[LISTED], now=NOW, root_key=root)
    sync_dir(dev, site, b.root_public, now=NOW)
    for f in (dev / "trust" / "status").iterdir():
        f.unlink()
    build_test_bundle(site, status=[LISTED], now=NOW, root_key=root)  # version 2, same set
    assert sync_dir(dev, site, b.root_public, now=NOW).version == 2
    with StoreTrust(dev) as t:
        entry = t.status().lookup_document("ID", "CHN", "110105198307154282")
        assert entry is not None and entry.status == "red"


def test_a_full_status_part_whose_header_says_delta_is_refused(tmp_path: Path) -> None:
    """The authority's root signed it, the hashes match, and still: a status part given as
    the full set must say so in its own header (kind 0), or the apply refuses it and the
    device keeps what it had."""
    import hashlib
    import zlib

    from sentinel.errors import BundleError

    site, dev = tmp_path / "site", tmp_path / "dev"
    b = build_test_bundle(site, status=[LISTED], now=NOW)
    env = json.loads((site / "manifest.json").read_text())
    payload = json.loads(env["signed"])
    ref = payload["parts"]["status"]
    raw = bytearray(zlib.decompress((site / "parts" / ref["sha256"]).read_bytes()))
    assert raw[5] == ss.KIND_FULL  # magic (4 bytes), format, kind
    raw[5] = ss.KIND_DELTA
    packed = zlib.compress(bytes(raw))
    ref.update(
        sha256=hashlib.sha256(packed).hexdigest(),
        size=len(packed),
        raw_sha256=hashlib.sha256(bytes(raw)).hexdigest(),
    )
    (site / "parts" / ref["sha256"]).write_bytes(packed)
    (site / "manifest.json").write_bytes(bm.sign_manifest(payload, [b.root_key]))
    (site / "timestamp.json").unlink(missing_ok=True)
    with pytest.raises(BundleError, match="count, kind or key"):
        sync_dir(dev, site, b.root_public, now=NOW)

"""D12 and D13 of the security review: the manifest envelope may vary, its nesting may not.

D12: "same version, different content" compares the signed payload, so a keyless
re-encoding of the envelope (other whitespace, a junk signature entry) neither blocks the
genuine bundle later nor counts as other content.  D13: a deeply nested manifest is a
BundleFormatError (recorded as the store's last refusal), never a RecursionError.
"""

from __future__ import annotations

import base64
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sentinel.authority.testing import StatusRecord, build_test_bundle, sync_dir
from sentinel.cli import main
from sentinel.errors import BundleFormatError, BundleRollbackError
from sentinel.trust import bundle as bm
from sentinel.trust.store import BundleStore, StoreTrust

NOW = datetime(2022, 5, 1, 12, 0, tzinfo=UTC)
UNTIL = NOW + timedelta(days=30)


def _reencoded(raw: bytes) -> bytes:
    """What anyone without a key can make of a manifest: same signed payload, other bytes."""
    env = json.loads(raw)
    env["signatures"].append({"keyid": "x", "sig": "AA=="})
    return json.dumps(env).encode()


def test_reencoded_envelope_does_not_block_the_genuine_bundle(tmp_path: Path) -> None:
    site, data = tmp_path / "site", tmp_path / "data"
    b1 = build_test_bundle(site, status=[StatusRecord("green", UNTIL, "P", "XXA", "1")], now=NOW)
    sync_dir(data, site, b1.root_public, now=NOW)
    b2 = build_test_bundle(
        site, status=[StatusRecord("red", UNTIL, "P", "XXA", "1")], now=NOW, root_key=b1.root_key
    )
    copy = tmp_path / "copy"
    shutil.copytree(site, copy)
    (copy / "manifest.json").write_bytes(_reencoded((site / "manifest.json").read_bytes()))
    assert sync_dir(data, copy, b1.root_public, now=NOW).outcome == "applied"
    # the genuine v2 is the same signed content: up to date, not "different content"
    assert sync_dir(data, site, b1.root_public, now=NOW).outcome == "up_to_date"
    with StoreTrust(data) as t:
        assert t.status().lookup_document("P", "XXA", "1").status == "red"
    assert (
        b2.manifest.digest
        == bm.verify_manifest(
            _reencoded((site / "manifest.json").read_bytes()), [b1.root_public], NOW
        ).digest
    )


def test_same_version_with_another_signed_payload_is_still_refused(tmp_path: Path) -> None:
    b = build_test_bundle(tmp_path / "a", now=NOW)
    other = build_test_bundle(tmp_path / "b", now=NOW + timedelta(seconds=1), root_key=b.root_key)
    assert other.manifest.version == b.manifest.version == 1
    with pytest.raises(BundleRollbackError):
        bm.plan_update(other.manifest, 1, b.manifest.digest, {})


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"signed":' + b"[" * 50_000 + b"]" * 50_000 + b',"signatures":[]}',
        b'{"a":"[[[[' + b"[" * 5000 + b'"}',  # brackets inside a string are not nesting
    ],
)
def test_nested_json_is_a_format_error(raw: bytes) -> None:
    with pytest.raises(BundleFormatError):
        bm.verify_manifest(raw, [], NOW)


def test_deeply_nested_signed_payload_is_a_format_error(tmp_path: Path) -> None:
    """Even a payload the root key really signed is parsed with the depth cap."""
    b = build_test_bundle(tmp_path / "site", now=NOW)
    signed = "[" * 20_000 + "]" * 20_000
    sig = base64.b64encode(b.root_key.sign(signed.encode())).decode()
    env = {"signed": signed, "signatures": [{"keyid": bm.key_id(b.root_key), "sig": sig}]}
    with pytest.raises(BundleFormatError, match="nested"):
        bm.verify_manifest(json.dumps(env).encode(), [b.root_public], NOW)


def test_sync_from_a_nested_manifest_is_one_refusal(tmp_path: Path, capsys) -> None:
    b = build_test_bundle(tmp_path / "site", now=NOW)
    usb = tmp_path / "usb"
    usb.mkdir()
    (usb / "manifest.json").write_bytes(b"[" * 100_000 + b"]" * 100_000)
    data = tmp_path / "data"
    cfg = tmp_path / "s.toml"
    root = b.write_root_pub(tmp_path / "root_pub.pem")
    cfg.write_text(f'data_dir = "{data}"\n[trust]\nroot_key = "{root}"\n')
    assert main(["sync", "--config", str(cfg), "--from", str(usb), "--retries", "0"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "nested deeper" in err
    with BundleStore(data) as store:
        assert "BundleFormatError" in (store.meta("last_error") or "")


def test_depth_counts_structure_not_brackets_in_strings() -> None:
    assert bm.json_depth(b'{"a":"[[[[\\"[[[[","b":[1,{"c":[]}]}') == 4
    assert bm.json_depth(b'"no structure"') == 0

"""Signed manifests that are well signed but wrong inside: each refused with its reason.

A publisher key can sign nonsense (a bug, a compromised build host): the device still
refuses a manifest of another format, parts with names that could walk the file system,
a status entry that is not an object, and JSON nested past the cap.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sentinel.authority.publish import generate_root_key
from sentinel.errors import BundleFormatError
from sentinel.trust import bundle as bm

NOW = datetime(2022, 5, 1, 12, 0, tzinfo=UTC)
ROOT = generate_root_key()


def _payload(**changes: object) -> dict:
    p = bm.make_payload(
        version=3,
        issued_at=NOW,
        expires_at=NOW + timedelta(days=1),
        authority_key_id=bm.key_id(ROOT),
        parts=[bm.PartRef("trust_list", "0" * 64, 10)],
        status=None,
    )
    p.update(changes)
    return p


def _verify(payload: dict) -> bm.Manifest:
    return bm.verify_manifest(bm.sign_manifest(payload, [ROOT]), [ROOT.public_key()], NOW)


def test_a_good_payload_verifies() -> None:
    assert _verify(_payload()).version == 3


@pytest.mark.parametrize("fmt", ["sentinel-bundle/1", "", None, 2])
def test_another_format_is_refused(fmt: object) -> None:
    with pytest.raises(BundleFormatError, match="format"):
        _verify(_payload(format=fmt))


@pytest.mark.parametrize("name", ["../trust_list", "a/b", "x.y", "", "trust list"])
def test_part_names_are_plain_words(name: str) -> None:
    parts = {name: {"sha256": "0" * 64, "size": 10}}
    with pytest.raises(BundleFormatError, match="bad part"):
        _verify(_payload(parts=parts))


@pytest.mark.parametrize("parts", [[], "x", {"trust_list": "x"}, {"trust_list": []}])
def test_parts_must_be_objects(parts: object) -> None:
    with pytest.raises(BundleFormatError):
        _verify(_payload(parts=parts))


@pytest.mark.parametrize("status", [[], "x", 1])
def test_status_must_be_an_object(status: object) -> None:
    with pytest.raises(BundleFormatError, match="status must be an object"):
        _verify(_payload(status=status))


def test_json_depth_cap_is_inclusive() -> None:
    inside = bm.MAX_JSON_DEPTH
    assert bm.json_depth(b"[" * inside + b"]" * inside) == inside
    bm.loads_bounded(b"[" * inside + b"]" * inside, "test")
    with pytest.raises(BundleFormatError, match="nested deeper"):
        bm.loads_bounded(b"[" * (inside + 1) + b"]" * (inside + 1), "test")
    assert bm.json_depth(b'{"a": "[[[[[[[[[[[[[[[[[["}') == 1  # brackets in strings do not count
    # depth, not count: a trust list of many shallow entries is 4 deep however long
    wide = b'{"certs": [' + b",".join([b'{"kid": [1, 2]}'] * 5000) + b"]}"
    assert bm.json_depth(wide) == 4
    assert len(bm.loads_bounded(wide, "test")["certs"]) == 5000


@pytest.mark.parametrize("kid", ["AB" * 16, "a" * 31, "g" * 32, 12, None])
def test_status_key_id_is_32_lowercase_hex_digits(kid: object) -> None:
    status = {"key_id": kid, "count": 0, "sha256": "0" * 64, "size": 0}
    with pytest.raises(BundleFormatError, match="key_id"):
        _verify(_payload(status=status))


@pytest.mark.parametrize("akid", [None, 7, ["x"]])
def test_authority_key_id_must_be_a_string(akid: object) -> None:
    with pytest.raises(BundleFormatError, match="authority_key_id"):
        _verify(_payload(authority_key_id=akid))


def test_manifest_size_cap_is_inclusive() -> None:
    raw = bm.sign_manifest(_payload(), [ROOT])
    pad = bm.MAX_MANIFEST_BYTES - len(raw)
    at_cap = raw[:-1] + b" " * pad + raw[-1:]  # JSON allows the whitespace
    assert len(at_cap) == bm.MAX_MANIFEST_BYTES
    assert bm.verify_manifest(at_cap, [ROOT.public_key()], NOW).version == 3
    with pytest.raises(BundleFormatError):
        bm.verify_manifest(at_cap[:-1] + b"  " + at_cap[-1:], [ROOT.public_key()], NOW)


def test_signatures_the_device_cannot_use_are_skipped_not_fatal() -> None:
    """An envelope's signature list may carry entries this device cannot use before the one
    it can: junk, a key it does not pin (another root during a rotation), a signature that
    is not Base64. Each is skipped, and the pinned key's signature after them verifies."""
    import json

    env = json.loads(bm.sign_manifest(_payload(), [ROOT]))
    other = generate_root_key()
    foreign = json.loads(bm.sign_manifest(_payload(), [other]))["signatures"][0]
    env["signatures"] = [
        "not an object",
        foreign,
        {"keyid": bm.key_id(ROOT), "sig": "***not base64***"},
        *env["signatures"],
    ]
    raw = json.dumps(env).encode()
    m = bm.verify_manifest(raw, [ROOT.public_key()], NOW)
    assert m.version == 3 and m.signed_by == bm.key_id(ROOT)


def test_a_stored_manifest_names_its_format() -> None:
    """``stored_format`` reads the payload's ``format`` back (how an older release's bundle
    is told from a corrupt one), and None when there is none to read."""
    import json

    raw = bm.sign_manifest(_payload(), [ROOT])
    assert bm.stored_format(raw) == bm.FORMAT
    assert not bm.is_older_format(bm.stored_format(raw))
    older = bm.sign_manifest(_payload(format="sentinel-bundle/1"), [ROOT])
    assert bm.stored_format(older) == "sentinel-bundle/1"
    not_a_map = json.dumps({"signed": json.dumps([1, 2]), "signatures": []}).encode()
    assert bm.stored_format(not_a_map) is None
    assert bm.stored_format(b"garbage") is None
    assert bm.stored_format(b'{"signatures": []}') is None  # no payload at all: KeyError
    assert bm.stored_format(b"[1, 2]") is None  # an envelope that is a list: TypeError


def test_a_decoder_that_runs_out_of_stack_is_a_format_error(monkeypatch) -> None:  # noqa: ANN001
    """The depth cap keeps json.loads far from Python's recursion limit; should a thread
    with little stack left still hit it, the bundle is refused, not the sync crashed."""

    def deep(_raw: bytes) -> object:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(bm.json, "loads", deep)
    with pytest.raises(BundleFormatError, match="unreadable"):
        bm.loads_bounded(b"[[1]]", "manifest")


@pytest.mark.parametrize("digest", [list("0" * 64), 0, None, "0" * 63, "A" * 64])
def test_a_part_digest_must_be_64_lowercase_hex_characters(digest: object) -> None:
    """A part's sha256 of another type (a list of 64 hex characters has the right length
    and characters) is refused as the manifest's error, not a TypeError."""
    parts = {"trust_list": {"sha256": digest, "size": 10}}
    with pytest.raises(BundleFormatError, match="SHA-256 hex digest"):
        _verify(_payload(parts=parts))


@pytest.mark.parametrize("delta", [[], "status_delta", 3, {"part": "other"}])
def test_a_delta_must_be_an_object_naming_its_part(delta: object) -> None:
    with pytest.raises(BundleFormatError, match="delta must name the part status_delta"):
        _verify(_payload(delta=delta))


def test_a_root_key_that_is_neither_ed25519_nor_p256_is_refused() -> None:
    """The bundle's root key is Ed25519 or ECDSA P-256 (docs/bundles.md): an RSA or a
    P-384 key in the config is a clear error, not a key the verify then trips on."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    for key in (rsa.generate_private_key(65537, 2048), ec.generate_private_key(ec.SECP384R1())):
        pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        with pytest.raises(BundleFormatError, match="must be Ed25519 or ECDSA P-256"):
            bm.load_public_key(pem)
    ok = ROOT.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert isinstance(bm.load_public_key(ok), type(ROOT.public_key()))

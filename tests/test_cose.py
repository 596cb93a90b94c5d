"""The COSE layer on its own (``sentinel.credentials.cose``): each malformed structure is
refused by its own check with its own message, not by whatever fails later."""

from __future__ import annotations

import zlib

import cbor2
import pytest

from sentinel.credentials import cose
from sentinel.errors import MalformedCredential
from sentinel.reasons import ReasonCode

PROT = cbor2.dumps({cose.HDR_ALG: cose.ALG_ES256, cose.HDR_KID: b"12345678"})


def _sign1(*items: object) -> bytes:
    return cbor2.dumps(cbor2.CBORTag(18, list(items)))


def test_a_truncated_zlib_stream_is_refused_as_truncated() -> None:
    whole = zlib.compress(_sign1(PROT, {}, b"payload" * 40, b"\x01" * 64))
    assert cose.inflate(whole)  # the whole stream inflates
    for cut in (len(whole) - 1, len(whole) - 4, len(whole) // 2):
        with pytest.raises(MalformedCredential, match="truncated") as err:
            cose.inflate(whole[:cut])
        assert err.value.reason is ReasonCode.MALFORMED


def test_a_stream_one_byte_past_the_cap_is_too_large() -> None:
    data = zlib.compress(b"\0" * 1001)
    with pytest.raises(MalformedCredential) as err:
        cose.inflate(data, max_bytes=1000)
    assert err.value.reason is ReasonCode.TOO_LARGE


@pytest.mark.parametrize(
    ("unprotected", "signature"),
    [({}, 12345), ({}, "r||s as text"), ([1, 2], b"\x01" * 64), (b"not a map", b"\x01" * 64)],
)
def test_a_signature_that_is_not_bytes_or_a_header_that_is_not_a_map_is_refused(
    unprotected: object, signature: object
) -> None:
    with pytest.raises(MalformedCredential, match="bad signature or header") as err:
        cose.decode_cose(_sign1(PROT, unprotected, b"payload", signature))
    assert err.value.reason is ReasonCode.MALFORMED


def test_a_well_formed_sign1_decodes_with_its_kid_and_alg() -> None:
    got = cose.decode_cose(_sign1(PROT, {}, b"payload", b"\x01" * 64))
    assert (got.kid, got.alg, got.payload) == (b"12345678", cose.ALG_ES256, b"payload")

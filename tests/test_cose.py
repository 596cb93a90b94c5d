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


@pytest.mark.parametrize(
    "text",
    [
        "GGW",  # RFC 9285 §4.2: a triple above 65535 (16 + 16·45 + 32·45² = 65536)
        "A",  # a lone trailing character: no byte encodes to one character
        "bb8",  # lower case: outside the 45-character alphabet
        "ÄÄÄ",
    ],
)
def test_base45_outside_rfc_9285_is_malformed(text: str) -> None:
    """RFC 9285's own rules decide what is Base45: "BB8" is its example for "AB"; anything
    else is refused as malformed by ``b45decode`` itself, not left to a later catch-all."""
    assert cose.b45decode("BB8") == b"AB"
    with pytest.raises(MalformedCredential, match="base45") as err:
        cose.b45decode(text)
    assert err.value.reason is ReasonCode.MALFORMED


def test_a_zlib_stream_with_a_broken_body_is_malformed() -> None:
    """A valid RFC 1950 header (0x78 0x9C) over a deflate body with an invalid block type:
    zlib's own error becomes a MALFORMED refusal by ``inflate``."""
    with pytest.raises(MalformedCredential, match="zlib: ") as err:
        cose.inflate(b"\x78\x9c" + b"\xff" * 16)
    assert err.value.reason is ReasonCode.MALFORMED


@pytest.mark.parametrize(
    "data",
    [
        b"\xff",  # a CBOR "break" with nothing to end (RFC 8949 §3.2.1)
        b"\x5a\xff\xff\xff\xff",  # a byte string announcing 4 GiB, then nothing
        b"\x81" * 200_000,  # arrays nested 200 000 deep
    ],
)
def test_cbor_that_does_not_parse_is_malformed(data: bytes) -> None:
    with pytest.raises(MalformedCredential, match="COSE: ") as err:
        cose.decode_cose(data)
    assert err.value.reason is ReasonCode.MALFORMED


def _der_shaped(total: int) -> bytes:
    """A raw r||s of ``total`` bytes that also parses as a strict DER Ecdsa-Sig-Value
    (about one raw signature in 2^16 starts like this by chance)."""
    head = b"\x30" + (bytes([0x81, total - 3]) if total > 129 else bytes([total - 2]))
    room = total - len(head) - 4
    r_len = room // 2
    r = bytes([0x11]) * r_len
    s_ = bytes([0x22]) * (room - r_len)
    sig = head + b"\x02" + bytes([len(r)]) + r + b"\x02" + bytes([len(s_)]) + s_
    assert len(sig) == total
    return sig


@pytest.mark.parametrize("total", [64, 96, 132])  # P-256, P-384, P-521 raw r||s
def test_a_raw_signature_of_each_curves_size_is_split_in_half_even_if_it_parses_as_der(
    total: int,
) -> None:
    """The revocation hash's SIGNATURE for ECDSA is ``r`` of the raw r||s (EU DCC
    revocation spec): a raw signature is the first half, whatever its bytes look like."""
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    sig = _der_shaped(total)
    decode_dss_signature(sig)  # it does parse as DER
    assert cose._ecdsa_r(sig) == sig[: total // 2]


@pytest.mark.parametrize(
    "error", [ValueError, KeyError, TypeError, IndexError], ids=lambda e: e.__name__
)
def test_any_error_of_the_base45_decoder_is_a_refusal(
    monkeypatch: pytest.MonkeyPatch, error: type[Exception]
) -> None:
    """The catch-all that turns a decoder bug into a refusal: each error type a base45
    release raises on bad input (0.4.4 raises ValueError) is MALFORMED, never a crash."""

    def broken(_text: str) -> bytes:
        raise error("decoder bug")

    monkeypatch.setattr(cose.base45, "b45decode", broken)
    with pytest.raises(MalformedCredential) as err:
        cose.b45decode("6BF")
    assert err.value.reason is ReasonCode.MALFORMED


@pytest.mark.parametrize(
    "error",
    [cbor2.CBORDecodeError, ValueError, TypeError, RecursionError, OverflowError],
    ids=lambda e: e.__name__,
)
def test_any_error_of_the_cbor_decoder_is_a_refusal(
    monkeypatch: pytest.MonkeyPatch, error: type[Exception]
) -> None:
    """cbor2 6.x wraps its errors in CBORDecodeError; releases the package allows (>= 5.6)
    and its pure-Python decoder let ValueError, TypeError, RecursionError or OverflowError
    out on hostile input: each is MALFORMED, never a crash."""

    def broken(_data: bytes) -> object:
        raise error("decoder bug")

    monkeypatch.setattr(cose.cbor2, "loads", broken)
    with pytest.raises(MalformedCredential) as err:
        cose.decode_cose(b"\x84")
    assert err.value.reason is ReasonCode.MALFORMED


def test_an_ecdsa_signature_neither_raw_nor_der_gives_its_first_half() -> None:
    """70 bytes that are not a DER ``Ecdsa-Sig-Value``: ``_ecdsa_r`` does not raise, it
    takes the first half, as for a raw r||s."""
    sig = bytes(range(70))
    assert cose._ecdsa_r(sig) == sig[:35]


@pytest.mark.parametrize(
    "body", [{b"p": 1, 2: 3, b"x": 4, b"s": 5}, "abcd", b"abcd"], ids=["map", "text", "bytes"]
)
def test_a_sign1_that_is_not_an_array_is_refused_as_such(body: object) -> None:
    """RFC 9052 §4.2: COSE_Sign1 is an array of four. A map, a text or a byte string of
    four items is not one, and is refused saying so (not by a later check by chance)."""
    with pytest.raises(MalformedCredential, match="not a 4-element array") as err:
        cose.decode_cose(cbor2.dumps(cbor2.CBORTag(18, body)))
    assert err.value.reason is ReasonCode.MALFORMED


@pytest.mark.parametrize(("r_bytes", "padded"), [(31, 32), (47, 48), (65, 66), (70, 70)])
def test_a_der_signatures_r_is_padded_to_its_curves_field_size(r_bytes: int, padded: int) -> None:
    """The revocation SIGNATURE hash takes ``r`` at the field size of P-256, P-384 or P-521
    (32, 48, 66 bytes), left-padded; an ``r`` longer than any of them stays as it is."""
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    r = int.from_bytes(b"\x01" + b"\x5a" * (r_bytes - 1), "big")
    sig = encode_dss_signature(r, 12345)
    got = cose._ecdsa_r(sig)
    assert len(got) == padded and int.from_bytes(got, "big") == r


def test_a_zlib_header_of_another_compression_method_is_not_a_zlib_stream() -> None:
    """RFC 1950 §2.2: CM (the low nibble of CMF) is 8 for deflate; 0x79 0x18 has a valid
    header checksum (0x7918 % 31 == 0) and CM 9, so it is refused by the header check."""
    from sentinel.credentials import cose
    from sentinel.errors import CredentialError
    from sentinel.reasons import ReasonCode

    assert (0x79 << 8 | 0x18) % 31 == 0
    with pytest.raises(CredentialError, match="not a zlib stream") as err:
        cose.inflate(bytes([0x79, 0x18]) + b"\x00" * 16, 1024)
    assert err.value.reason is ReasonCode.MALFORMED

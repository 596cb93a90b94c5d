"""Health codes assembled by hand from docs/healthcode.md, not by the project's issuer.

The issuer and the verifier share the claim numbers and the status table, so a round trip
through both proves nothing about the documented layout; these codes are built from the
documentation's byte layout with literal claim numbers, and signed with a key of our own.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import base45
import cbor2
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from sentinel.credentials import healthcode as hc
from sentinel.credentials.healthcode_keys import HealthCodeKeys, IssuingKey
from sentinel.errors import CredentialError
from sentinel.reasons import ReasonCode

NOW = datetime(2022, 5, 1, 12, 0, tzinfo=UTC)
T = int(NOW.timestamp())
KEY = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
SPKI = KEY.public_key().public_bytes(
    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
)
KID = hashlib.sha256(SPKI).digest()[:4]  # docs: first 4 bytes of SHA-256(SPKI DER)
KEYS = HealthCodeKeys((IssuingKey(KID, -8, KEY.public_key(), None, None),))


def code(claims: dict, *, alg: int = -8, kid: bytes = KID) -> str:
    protected = cbor2.dumps({1: alg, 4: kid})
    payload = cbor2.dumps(claims)
    sig = KEY.sign(cbor2.dumps(["Signature1", protected, b"", payload]))  # RFC 9052 §4.4
    return "HC:" + base45.b45encode(cbor2.dumps([protected, {}, payload, sig])).decode()


def claims(status: int = 0, iat: object = T, exp: object = T + 120, sub: object = "K7Q2") -> dict:
    return {2: sub, 4: exp, 6: iat, -65537: [status, T + 86400]}


def reason(text: str, now: datetime = NOW) -> ReasonCode:
    with pytest.raises(CredentialError) as exc:
        hc.verify_code(text, KEYS, now)
    return exc.value.reason


@pytest.mark.parametrize(("status", "name"), [(0, "green"), (1, "yellow"), (2, "red")])
def test_documented_layout_verifies_with_the_documented_status_table(status: int, name: str):
    got = hc.verify_code(code(claims(status)), KEYS, NOW)
    assert (got.subject, got.status, got.kid) == ("K7Q2", name, KID)
    assert got.issued_at == NOW and got.expires_at == NOW + timedelta(seconds=120)
    assert got.status_valid_until == NOW + timedelta(days=1)


def test_status_outside_the_table_is_schema_invalid() -> None:
    assert reason(code(claims(3))) is ReasonCode.SCHEMA_INVALID
    assert reason(code(claims(-1))) is ReasonCode.SCHEMA_INVALID


@pytest.mark.parametrize("bad", [True, -1, hc.MAX_EPOCH + 1, 2**64, 1.5e9, "1651406400", None])
def test_epoch_claims_must_be_plain_non_negative_integers_a_datetime_can_hold(bad: object):
    assert reason(code(claims(iat=bad))) is ReasonCode.SCHEMA_INVALID
    assert reason(code(claims(exp=bad))) is ReasonCode.SCHEMA_INVALID


def test_epoch_range_edges_are_valid_times() -> None:
    """0 and MAX_EPOCH (year 3058) are valid epochs: refused for freshness, not as malformed
    (2**40 seconds, the old bound, is past year 9999 and crashed into MALFORMED)."""
    assert reason(code(claims(iat=0, exp=120))) is ReasonCode.CODE_EXPIRED
    far = hc.MAX_EPOCH
    assert reason(code(claims(iat=far - 120, exp=far))) is ReasonCode.CODE_NOT_YET_VALID


def test_the_health_claim_lives_at_minus_65537() -> None:
    moved = claims()
    moved[-65538] = moved.pop(-65537)
    assert reason(code(moved)) is ReasonCode.SCHEMA_INVALID


def test_claim_numbers_are_rfc_8392s() -> None:
    swapped = claims()
    swapped[3] = swapped.pop(2)  # "aud" instead of "sub"
    assert reason(code(swapped)) is ReasonCode.SCHEMA_INVALID


def test_text_length_cap() -> None:
    long = "HC:" + "0" * (hc.MAX_TEXT_CHARS - 3)
    assert len(long) == hc.MAX_TEXT_CHARS
    assert reason(long) is not ReasonCode.TOO_LARGE
    assert reason(long + "0") is ReasonCode.TOO_LARGE


def test_wrong_algorithm_for_the_key_is_a_bad_signature() -> None:
    assert reason(code(claims(), alg=-7)) is ReasonCode.BAD_SIGNATURE


def test_es256_signature_must_be_exactly_r_and_s_of_32_bytes() -> None:
    """RFC 9053 §2.1: r || s, each 32 bytes. A padded s (0x00 || s) has the same integer
    value and would verify if the length were not checked: such a code is refused."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    key = ec.derive_private_key(7**40, ec.SECP256R1())
    kid = b"\x01\x02\x03\x04"
    keys = HealthCodeKeys((IssuingKey(kid, -7, key.public_key(), None, None),))
    protected = cbor2.dumps({1: -7, 4: kid})
    payload = cbor2.dumps(claims())
    r, s = decode_dss_signature(
        key.sign(cbor2.dumps(["Signature1", protected, b"", payload]), ec.ECDSA(hashes.SHA256()))
    )

    def text(sig: bytes) -> str:
        cose = cbor2.dumps([protected, {}, payload, sig])
        return "HC:" + base45.b45encode(cose).decode()

    good = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    assert hc.verify_code(text(good), keys, NOW).status == "green"
    padded = r.to_bytes(32, "big") + b"\x00" + s.to_bytes(32, "big")
    with pytest.raises(CredentialError) as exc:
        hc.verify_code(text(padded), keys, NOW)
    assert exc.value.reason is ReasonCode.BAD_SIGNATURE


def test_text_without_the_hc_prefix_is_unreadable() -> None:
    good = code(claims())
    assert reason("HX:" + good[3:]) is ReasonCode.UNREADABLE
    assert reason(good[3:]) is ReasonCode.UNREADABLE


def test_default_freshness_window_and_lifetime_cap() -> None:
    """Defaults of ``verify_code``: 30 s of clock skew either side, 10 minutes of lifetime."""
    text = code(claims())  # iat T, exp T + 120
    assert hc.verify_code(text, KEYS, NOW + timedelta(seconds=150)).status == "green"
    assert reason(text, NOW + timedelta(seconds=151)) is ReasonCode.CODE_EXPIRED
    assert hc.verify_code(text, KEYS, NOW - timedelta(seconds=30)).status == "green"
    assert reason(text, NOW - timedelta(seconds=31)) is ReasonCode.CODE_NOT_YET_VALID
    assert hc.verify_code(code(claims(exp=T + 600)), KEYS, NOW).status == "green"
    assert reason(code(claims(exp=T + 601))) is ReasonCode.SCHEMA_INVALID
    assert reason(code(claims(exp=T))) is ReasonCode.SCHEMA_INVALID  # exp must follow iat


def test_issuing_key_validity_is_inclusive_at_both_ends() -> None:
    start, end = NOW - timedelta(days=1), NOW + timedelta(days=1)
    keys = HealthCodeKeys((IssuingKey(KID, -8, KEY.public_key(), start, end),))
    for at in (start, end):
        t = int(at.timestamp())
        text = code(claims(iat=t, exp=t + 60))
        assert hc.verify_code(text, keys, at).status == "green"
    t = int(end.timestamp()) + 1
    late = code(claims(iat=t, exp=t + 60))
    with pytest.raises(CredentialError) as exc:
        hc.verify_code(late, keys, end + timedelta(seconds=1))
    assert exc.value.reason is ReasonCode.SIGNER_NOT_VALID


@pytest.mark.parametrize("field", ["iat", "exp", "status valid-until"])
def test_a_boolean_time_is_refused_as_that_time_not_by_a_later_check(field: str) -> None:
    """CBOR true is not the epoch second 1: the refusal names the field itself (a later
    check of the times would refuse it too, for another reason)."""
    c = claims()
    if field == "iat":
        c[6] = True
    elif field == "exp":
        c[4] = True
    else:
        c[-65537] = [0, True]
    with pytest.raises(CredentialError, match=f"{field} missing or out of range") as exc:
        hc.verify_code(code(c), KEYS, NOW)
    assert exc.value.reason is ReasonCode.SCHEMA_INVALID


def test_a_code_whose_replay_window_ended_can_be_shown_again_and_is_then_held() -> None:
    """Once a code's replay window has passed, another presentation may use it; from then
    it is that presentation's, and a third within the new window is a replay (before the
    guard's periodic prune has dropped the old entry)."""
    guard = hc.ReplayGuard()
    cid = b"code-1"
    assert hc.ReplayGuard.PRUNE_EVERY_S > 6  # the calls below fall between two prunes
    guard.check(cid, "HC:x", 1, forget_at=3.0, now=0.0)
    guard.check(cid, "HC:x", 2, forget_at=30.0, now=5.0)  # presentation 1's window passed
    with pytest.raises(CredentialError) as exc:  # and 2 holds the code now
        guard.check(cid, "HC:x", 3, forget_at=40.0, now=6.0)
    assert exc.value.reason is ReasonCode.CODE_REPLAY


@pytest.mark.parametrize("status", [1.0, True, "1", None])
def test_a_status_that_is_not_a_plain_integer_is_schema_invalid(status: object) -> None:
    c = claims()
    c[-65537] = [status, T + 86400]
    with pytest.raises(CredentialError, match="bad status") as exc:
        hc.verify_code(code(c), KEYS, NOW)
    assert exc.value.reason is ReasonCode.SCHEMA_INVALID


def test_a_status_set_entry_with_a_status_it_does_not_know_changes_nothing() -> None:
    from sentinel.trust.provider import StatusEntry

    got = hc.verify_code(code(claims(0)), KEYS, NOW)
    hc.apply_status(got, StatusEntry("purple", NOW + timedelta(days=1)), NOW)
    assert got.status == "green"
    with pytest.raises(CredentialError) as exc:
        hc.apply_status(got, StatusEntry("red", NOW + timedelta(days=1)), NOW)
    assert exc.value.reason is ReasonCode.CODE_STATUS_CHANGED

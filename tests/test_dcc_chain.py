"""The HC1 chain on good and bad input, with real keys."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime, timedelta

import base45
import cbor2
import pytest

from sentinel.authority import dcc_issue as di
from sentinel.credentials import dcc
from sentinel.credentials.model import CredentialKind
from sentinel.credentials.trustlist import TrustList
from sentinel.errors import CredentialError
from sentinel.reasons import ReasonCode

DAY = timedelta(days=1)


def vac(signer: di.IssuerKey, now: datetime, **kw: object) -> str:
    return di.issue(
        di.vaccination(on="2022-01-10"),
        signer,
        issued_at=now - DAY,
        expires_at=now + 300 * DAY,
        **kw,
    )  # type: ignore[arg-type]


def reason_of(text: str, trust: TrustList, now: datetime) -> ReasonCode:
    with pytest.raises(CredentialError) as err:
        dcc.verify(text, trust, now)
    return err.value.reason


def test_es256_round_trip(signer: di.IssuerKey, trust: TrustList, now: datetime) -> None:
    cred = dcc.verify(vac(signer, now), trust, now)
    assert cred.kind is CredentialKind.DCC_VACCINATION
    assert cred.vaccination is not None and cred.vaccination.dose_number == 2
    # the product and the disease reach the rules (CertLogic's payload.v[0].mp and .tg)
    assert (cred.vaccination.product, cred.vaccination.disease) == ("EU/1/20/1528", "840539006")
    assert cred.issuer_kid == signer.kid.hex()
    assert cred.display_name == "M********* E****, 1974"
    assert "Mustermann" not in repr(cred) and "1974-08-12" not in repr(cred)


def test_a_first_dose_of_two_is_read_as_dose_one_of_two(
    signer: di.IssuerKey, trust: TrustList, now: datetime
) -> None:
    text = di.issue(
        di.vaccination(dn=1, sd=2, on="2022-01-10"),
        signer,
        issued_at=now - DAY,
        expires_at=now + 300 * DAY,
    )
    v = dcc.verify(text, trust, now).vaccination
    assert v is not None
    assert (v.dose_number, v.series_doses) == (1, 2)  # dn and sd, never the other way round


def test_ps256_round_trip(rsa_signer: di.IssuerKey, trust: TrustList, now: datetime) -> None:
    text = di.issue(
        di.test(now - 3600 * timedelta(seconds=1)),
        rsa_signer,
        issued_at=now - DAY,
        expires_at=now + DAY,
    )
    cred = dcc.verify(text, trust, now)
    assert cred.kind is CredentialKind.DCC_TEST and cred.test is not None
    assert cred.test.not_detected and cred.test.disease == "840539006"


def test_untagged_cose_and_kid_in_unprotected_header(
    signer: di.IssuerKey, trust: TrustList, now: datetime
) -> None:
    payload = di.claims(
        {**di.person(), **di.vaccination()}, issued_at=now - DAY, expires_at=now + DAY
    )
    cose = di.sign_cose(payload, signer, kid_in_protected=False, tagged=False)
    assert dcc.verify(di.encode_hc1(cose), trust, now).kind is CredentialKind.DCC_VACCINATION


def test_wrong_signature(signer: di.IssuerKey, trust: TrustList, now: datetime) -> None:
    rogue = di.make_signer()
    forged = di.IssuerKey(rogue.private_key, signer.certificate)  # right kid, wrong key
    assert reason_of(vac(forged, now), trust, now) is ReasonCode.BAD_SIGNATURE


def test_flipped_payload_byte_breaks_signature(
    signer: di.IssuerKey, trust: TrustList, now: datetime
) -> None:
    cose = dcc.decode(vac(signer, now))
    payload = bytearray(cose.payload)
    payload[-3] ^= 0x01
    msg = cbor2.dumps(cbor2.CBORTag(18, [cose.protected_bytes, {}, bytes(payload), cose.signature]))
    assert reason_of(di.encode_hc1(msg), trust, now) is ReasonCode.BAD_SIGNATURE


def test_unknown_signer(now: datetime, trust: TrustList) -> None:
    assert reason_of(vac(di.make_signer(), now), trust, now) is ReasonCode.UNKNOWN_SIGNER


def test_empty_trust_list(signer: di.IssuerKey, now: datetime) -> None:
    assert reason_of(vac(signer, now), TrustList(), now) is ReasonCode.NO_TRUST_DATA


def test_expired_and_future(signer: di.IssuerKey, trust: TrustList, now: datetime) -> None:
    text = vac(signer, now)
    assert reason_of(text, trust, now + 400 * DAY) is ReasonCode.EXPIRED
    # the signer certificate itself is valid until 2030; the CWT was issued yesterday
    assert reason_of(text, trust, now - 3 * DAY) is ReasonCode.NOT_YET_VALID


def test_signer_certificate_expired(trust: TrustList, now: datetime) -> None:
    old = di.make_signer(not_before=now - 400 * DAY, not_after=now - DAY)
    tl = TrustList.from_certificates([old.der])
    assert reason_of(vac(old, now), tl, now) is ReasonCode.SIGNER_NOT_VALID


def test_signer_key_usage_restricts_type(now: datetime) -> None:
    test_only = di.make_signer(cert_types="t", not_before=now - DAY, not_after=now + 99 * DAY)
    tl = TrustList.from_certificates([test_only.der])
    assert reason_of(vac(test_only, now), tl, now) is ReasonCode.SIGNER_NOT_ALLOWED


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", ReasonCode.UNREADABLE),
        ("hello world", ReasonCode.UNREADABLE),
        ("HC1:", ReasonCode.MALFORMED),
        ("HC1:A", ReasonCode.MALFORMED),  # truncated base45 (1 char)
        ("HC1:abc", ReasonCode.MALFORMED),  # lowercase is outside the alphabet
        ("HC1:" + "ZZZ", ReasonCode.MALFORMED),  # a triple above 65535
        ("HC1:" + "A" * 9000, ReasonCode.TOO_LARGE),
    ],
)
def test_bad_text(text: str, reason: ReasonCode, trust: TrustList, now: datetime) -> None:
    assert reason_of(text, trust, now) is reason


def test_truncated_base45_of_a_real_code(
    signer: di.IssuerKey, trust: TrustList, now: datetime
) -> None:
    text = vac(signer, now)
    for cut in (len(text) - 1, len(text) - 2, len(text) // 2):
        assert reason_of(text[:cut], trust, now) is ReasonCode.MALFORMED


def test_zlib_bomb_is_bounded(trust: TrustList, now: datetime) -> None:
    bomb = zlib.compress(b"\x00" * (50 * 1024 * 1024), 9)  # 50 MiB of zeros, ~50 KiB
    text = "HC1:" + base45.b45encode(bomb[:5000]).decode()
    assert reason_of(text, trust, now) in (ReasonCode.TOO_LARGE, ReasonCode.MALFORMED)
    small_bomb = zlib.compress(b"\x00" * (dcc.MAX_INFLATED_BYTES * 4), 9)
    text = "HC1:" + base45.b45encode(small_bomb).decode()
    assert reason_of(text, trust, now) is ReasonCode.TOO_LARGE


def test_deep_cbor_is_refused(trust: TrustList, now: datetime) -> None:
    deep = b"\x81" * 5000 + b"\x00"
    text = "HC1:" + base45.b45encode(zlib.compress(deep)).decode()
    assert reason_of(text, trust, now) is ReasonCode.MALFORMED


def test_not_a_cose_structure(trust: TrustList, now: datetime) -> None:
    for obj in ([1, 2, 3], {"a": 1}, cbor2.CBORTag(98, [1]), [b"", {}, b"", 5]):
        text = di.encode_hc1(cbor2.dumps(obj))
        assert reason_of(text, trust, now) is ReasonCode.MALFORMED


def test_missing_payload_field_is_schema_invalid(
    signer: di.IssuerKey, trust: TrustList, now: datetime
) -> None:
    entry = di.vaccination()
    del entry["v"][0]["dn"]
    text = di.issue(entry, signer, issued_at=now - DAY, expires_at=now + DAY)
    assert reason_of(text, trust, now) is ReasonCode.SCHEMA_INVALID


def test_the_holder_pseudonym_is_the_keyed_hmac_of_name_and_birth_date(
    signer: di.IssuerKey, trust: TrustList, now: datetime
) -> None:
    """HMAC-SHA256 (RFC 2104) under the device's pseudonym key over the first ICAO family
    and given name parts and the date of birth, cut to 128 bits: computed here by hand."""
    import hashlib
    import hmac

    key = b"K" * 32
    cred = dcc.verify(vac(signer, now), trust, now, pseudonym_key=key)
    want = hmac.new(key, b"MUSTERMANN|ERIKA|1974-08-12", hashlib.sha256).hexdigest()[:32]
    assert cred.holder_pseudonym == want
    assert dcc.verify(vac(signer, now), trust, now).holder_pseudonym == ""  # no key, no name


def test_cwt_times_that_are_booleans_are_not_times() -> None:
    """RFC 8392 §3.1.4/§3.1.6: exp (claim 4) and iat (claim 6) are NumericDates; CBOR's
    true is not 1 (Python's bool is an int, so it is refused by name)."""
    now = datetime(2022, 1, 1, tzinfo=UTC)
    for claims in ({4: True, 6: 0}, {4: 2_000_000_000, 6: True}, {4: False}):
        with pytest.raises(CredentialError) as err:
            dcc.check_times(claims, now, timedelta(0))
        assert err.value.reason is ReasonCode.MALFORMED, claims


def test_a_cwt_without_exp_is_checked_by_its_iat_alone_when_exp_is_optional() -> None:
    now = datetime(2022, 1, 1, tzinfo=UTC)
    dcc.check_times({6: int(now.timestamp()) - 60}, now, timedelta(0))  # no exp: no expiry
    dcc.check_times({4: int(now.timestamp()) + 60}, now, timedelta(0))  # no iat: fine too
    with pytest.raises(CredentialError) as err:
        dcc.check_times({6: int(now.timestamp()) + 3600}, now, timedelta(minutes=5))
    assert err.value.reason is ReasonCode.NOT_YET_VALID
    with pytest.raises(CredentialError) as err:
        dcc.check_times({6: 0}, now, timedelta(0), require=True)
    assert err.value.reason is ReasonCode.SCHEMA_INVALID


def test_a_recovery_certificate_is_read_as_a_recovery(
    signer: di.IssuerKey, trust: TrustList, now: datetime
) -> None:
    day = now.date()
    text = di.issue(
        di.recovery(str(day - 30 * DAY), str(day - 19 * DAY), str(day + 150 * DAY)),
        signer,
        issued_at=now - DAY,
        expires_at=now + 300 * DAY,
    )
    cred = dcc.verify(text, trust, now)
    assert cred.kind is CredentialKind.DCC_RECOVERY and cred.recovery is not None
    assert cred.recovery.first_positive_on == day - 30 * DAY
    assert cred.vaccination is None and cred.test is None


def test_a_cwt_payload_that_is_not_a_map_is_malformed() -> None:
    from sentinel.credentials import cose

    for payload in ([1, 2], "claims", 7):
        with pytest.raises(CredentialError) as err:
            cose.decode_claims(cbor2.dumps(payload))
        assert err.value.reason is ReasonCode.MALFORMED


def test_a_name_given_only_in_its_icao_form_is_masked_from_that_form() -> None:
    """fn/gn may be absent (the schema needs only fnt): the kiosk masks the ICAO form."""
    dgc = {"nam": {"fnt": "MUSTERMANN", "gnt": "ERIKA"}, "dob": "1974-08-12"}
    assert dcc.masked_display(dgc) == "M********* E****, 1974"

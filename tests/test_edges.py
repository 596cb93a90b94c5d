"""Edges the suite used to leave open: each case pins one boundary a check must keep.

Health codes (issuing-key validity, replay memory to the end of a code's life, subject
ids), CertLogic (negative UTC offsets, strict equality, ``in``, ``if`` guards, the reduce
cap), MRZ fields (countries, fillers, birth centuries, GB 11643 regions and dates) and the
door state machine (negative grant durations).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import cbor2
import pytest

from sentinel.authority import healthcode_issue as hci
from sentinel.config import HealthCodeConfig
from sentinel.credentials import certlogic as cl
from sentinel.credentials import dcc, iddoc
from sentinel.credentials import healthcode as hc
from sentinel.credentials.healthcode_keys import HealthCodeKeys
from sentinel.errors import CredentialError
from sentinel.reasons import ReasonCode

NOW = datetime(2022, 5, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
SKEW = timedelta(seconds=30)


def _reason(fn, *args, **kw) -> ReasonCode:  # type: ignore[no-untyped-def]
    with pytest.raises(CredentialError) as exc:
        fn(*args, **kw)
    return exc.value.reason


# --- health codes ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def issuer() -> hci.Issuer:
    return hci.Issuer.generate("EdDSA")


def _verifier(keys: HealthCodeKeys) -> hc.HealthCodeVerifier:
    data = keys.to_json_bytes()
    return hc.HealthCodeVerifier(HealthCodeConfig(), lambda: data)  # type: ignore[arg-type]


def _code(issuer: hci.Issuer, at: datetime = NOW, subject: str = "K7Q2M9X4T1B8") -> str:
    return hci.issue(issuer, subject, "green", issued_at=at, status_valid_until=at + DAY)


def test_issuing_key_is_not_valid_before_its_not_before(issuer: hci.Issuer) -> None:
    """A key published in advance for a rotation signs nothing before its start."""
    keys = HealthCodeKeys((issuer.trusted(not_before=NOW + DAY, not_after=NOW + 9 * DAY),))
    assert _reason(hc.verify_code, _code(issuer), keys, NOW) is ReasonCode.SIGNER_NOT_VALID
    later = _code(issuer, NOW + 2 * DAY)
    assert hc.verify_code(later, keys, NOW + 2 * DAY).status == "green"


def test_replay_is_refused_until_the_code_is_past_expiry_plus_skew(issuer: hci.Issuer) -> None:
    """The replay memory lasts as long as the code is accepted: up to exp + skew. A
    screenshot shown by someone else in the last seconds of the code's life is a replay."""
    v = _verifier(HealthCodeKeys((issuer.trusted(),)))
    text = _code(issuer)  # 120 s lifetime, accepted until NOW + 120 s + 30 s skew
    v.verify(text, NOW, presentation_id=1)
    last = NOW + timedelta(seconds=120) + SKEW
    assert _reason(v.verify, text, last, presentation_id=2) is ReasonCode.CODE_REPLAY
    after = last + timedelta(seconds=1)
    assert _reason(v.verify, text, after, presentation_id=3) is ReasonCode.CODE_EXPIRED


@pytest.mark.parametrize("subject", ["", "x" * (hc.MAX_SUBJECT_CHARS + 1)])
def test_empty_or_overlong_subject_is_schema_invalid(issuer: hci.Issuer, subject: str) -> None:
    iat = int(NOW.timestamp())
    payload = cbor2.dumps({2: subject, 4: iat + 120, 6: iat, -65537: [0, iat + 86400]})
    claims = cbor2.loads(payload)
    keys = HealthCodeKeys((issuer.trusted(),))
    fine = hci.issue(
        issuer, "A" * hc.MAX_SUBJECT_CHARS, "green", issued_at=NOW, status_valid_until=NOW + DAY
    )
    assert hc.verify_code(fine, keys, NOW).subject == "A" * hc.MAX_SUBJECT_CHARS
    prot = cbor2.dumps({dcc.HDR_ALG: issuer.alg, dcc.HDR_KID: issuer.kid})
    sig = issuer.private_key.sign(cbor2.dumps(["Signature1", prot, b"", payload]))  # type: ignore[call-arg]
    import base45

    text = hc.PREFIX + base45.b45encode(cbor2.dumps([prot, {}, payload, sig])).decode()
    assert claims[2] == subject
    assert _reason(hc.verify_code, text, keys, NOW) is ReasonCode.SCHEMA_INVALID


# --- CertLogic (the specification's semantics, not Python's) ------------------------------


def test_negative_utc_offsets_are_read_as_negative() -> None:
    """CertLogic dates are RFC 3339; ``-05:00`` is five hours *behind* UTC."""
    data = {"a": "2021-06-01T10:00:00-05:00", "b": "2021-06-01T14:00:00Z"}
    a, b = ({"plusTime": [{"var": k}, 0, "hour"]} for k in "ab")
    assert cl.evaluate({"after": [a, b]}, data) is True  # 15:00Z is after 14:00Z
    assert cl.evaluate({"before": [a, b]}, data) is False


def test_strict_equality_does_not_mix_booleans_and_integers() -> None:
    assert cl.evaluate({"===": [True, 1]}, {}) is False
    assert cl.evaluate({"===": [1, 1]}, {}) is True
    assert cl.evaluate({"in": [1, [True]]}, {}) is False
    assert cl.evaluate({"in": [True, [True]]}, {}) is True


def test_if_guard_that_is_neither_truthy_nor_falsy_is_an_error() -> None:
    """CertLogic truthiness is defined for booleans, integers, strings, arrays and objects
    only; anything else (e.g. a date) as a guard is an error, not the else branch."""
    with pytest.raises(cl.CertLogicError):
        cl.evaluate({"if": [{"plusTime": ["2021-01-01", 0, "day"]}, "then", "else"]}, {})


def test_reduce_over_a_huge_operand_is_refused() -> None:
    data = {"xs": list(range(cl.MAX_REDUCE_ITEMS + 1))}
    logic = {"reduce": [{"var": "xs"}, {"+": [{"var": "accumulator"}, 1]}, 0]}
    with pytest.raises(cl.CertLogicError):
        cl.evaluate(logic, data)
    small = {"xs": [1, 2, 3]}
    assert cl.evaluate(logic, small) == 3


# --- MRZ fields ---------------------------------------------------------------------------

# the ICAO 9303-4 specimen with a real issuing state instead of the fictional "UTO"
TD3 = "P<NLDERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL898902C36NLD7408122F1204159ZE184226B<<<<<10"


def _with_line1(country: str) -> str:
    return "P<" + country + TD3[5:]


@pytest.mark.parametrize("country", ["U1O", "<<<", "123"])
def test_issuing_state_with_digits_or_only_fillers_is_unreadable(country: str) -> None:
    with pytest.raises(CredentialError) as exc:
        iddoc.parse_mrz(_with_line1(country), today=date(2011, 1, 1))
    assert exc.value.reason is ReasonCode.ID_UNREADABLE


def test_document_number_with_an_inner_filler_is_unreadable() -> None:
    """Fillers only pad a number at its end (ICAO 9303-3 §4.2): ``L8989<2C3`` is no number."""
    line1 = TD3.split("\n")[0]
    assert iddoc.parse_mrz(
        line1 + "\n" + _td3_line2("L898902C3", "740812", "120415"), today=date(2011, 1, 1)
    )
    with pytest.raises(CredentialError):
        iddoc.parse_mrz(
            line1 + "\n" + _td3_line2("L8989<2C3", "740812", "120415"), today=date(2011, 1, 1)
        )


def _td3_line2(number: str, born: str, expiry: str, personal: str = "ZE184226B<<<<<") -> str:
    """ICAO 9303-4 §4.2.2: number, check, nationality, birth, check, sex, expiry, check,
    personal number, check, composite check."""
    cd = iddoc.check_digit
    line = number + cd(number) + "NLD" + born + cd(born) + "F" + expiry + cd(expiry)
    line += personal + cd(personal)
    return line + cd(line[0:10] + line[13:20] + line[21:43])


def test_birth_years_after_2000_are_read_as_20xx() -> None:
    """YYMMDD with no century: a birth year not in the future is 20YY, else 19YY."""
    line1 = TD3.split("\n")[0]
    young = iddoc.parse_mrz(
        line1 + "\n" + _td3_line2("L898902C3", "050312", "300415"), today=date(2020, 1, 1)
    )
    old = iddoc.parse_mrz(
        line1 + "\n" + _td3_line2("L898902C3", "250312", "300415"), today=date(2020, 1, 1)
    )
    assert young.birth_date == date(2005, 3, 12)
    assert old.birth_date == date(1925, 3, 12)


def test_gb11643_region_and_future_birth_dates_are_refused() -> None:
    def number(body17: str) -> str:
        return body17 + iddoc.cn_check_char(body17)

    today = date(2022, 5, 1)
    assert iddoc.parse_cn_id(number("11010519491231002"), today=today).number
    with pytest.raises(CredentialError):  # region 99 is no province (GB/T 2260)
        iddoc.parse_cn_id(number("99010519491231002"), today=today)
    with pytest.raises(CredentialError):  # born tomorrow
        iddoc.parse_cn_id(number("11010520220502002"), today=today)


# --- door ----------------------------------------------------------------------------------


def test_negative_grant_duration_does_not_unlock_into_the_past() -> None:
    """A grant of a negative duration (a bad config that slipped through) unlocks for no
    time at all: the window ends now, never before now."""
    from sentinel.gate import door

    d, effects = door.step(door.Door(), door.Grant(-5.0), 100.0, 10.0)
    assert d.unlock_until == 100.0
    assert door.WakeAt(100.0) in effects


@pytest.mark.parametrize(("field", "pos"), [("document number", 9), ("birth date", 19)])
def test_each_check_digit_is_checked_on_its_own(field: str, pos: int) -> None:
    """A wrong field check digit with a composite recomputed over it (a forger's MRZ, or
    an OCR slip the composite happens to absorb) is refused: the composite alone is not
    enough (ICAO 9303-3 §4.9: every check digit must verify)."""
    line1 = TD3.split("\n")[0]
    good = _td3_line2("L898902C3", "740812", "300415")
    wrong = str((int(good[pos]) + 1) % 10)
    body = good[:pos] + wrong + good[pos + 1 : 43]
    forged = body + iddoc.check_digit(body[0:10] + body[13:20] + body[21:43])
    assert iddoc.parse_mrz(line1 + "\n" + good, today=date(2011, 1, 1))
    with pytest.raises(CredentialError):
        iddoc.parse_mrz(line1 + "\n" + forged, today=date(2011, 1, 1))


def test_filler_check_digit_only_over_empty_optional_data() -> None:
    """``<`` may stand for the optional-data check digit only when that field is empty."""
    line1 = TD3.split("\n")[0]
    empty = _td3_line2("L898902C3", "740812", "300415", personal="<" * 14)
    body = empty[:42] + "<"
    ok = body + iddoc.check_digit(body[0:10] + body[13:20] + body[21:43])
    assert iddoc.parse_mrz(line1 + "\n" + ok, today=date(2011, 1, 1))
    filled = _td3_line2("L898902C3", "740812", "300415")
    body = filled[:42] + "<"
    bad = body + iddoc.check_digit(body[0:10] + body[13:20] + body[21:43])
    with pytest.raises(CredentialError):
        iddoc.parse_mrz(line1 + "\n" + bad, today=date(2011, 1, 1))


# GB/T 2260: the province-level codes, an oracle from the standard (not the module's set)
GB2260 = {11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46}
GB2260 |= {50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83}


@pytest.mark.parametrize("prefix", range(10, 100))
def test_gb11643_region_prefixes_are_the_gb2260_provinces(prefix: int) -> None:
    body = f"{prefix}0105" + "19491231002"
    number = body + iddoc.cn_check_char(body)
    if prefix in GB2260:
        assert iddoc.parse_cn_id(number, today=date(2022, 5, 1)).number
    else:
        with pytest.raises(CredentialError):
            iddoc.parse_cn_id(number, today=date(2022, 5, 1))


def test_id_numbers_are_routed_from_every_symbol_kind() -> None:
    body = "11010519491231002"
    number = body + iddoc.cn_check_char(body)
    for kind in ("ID_NUMBER", "CODE128", "PDF417"):
        assert iddoc.parse_symbol_text(kind, number, today=date(2022, 5, 1)).number
    assert iddoc.looks_like_id("CODE128", number)
    assert not iddoc.looks_like_id("CODE128", "A" * 18)
    assert not iddoc.looks_like_id("QRCODE", number)
    with pytest.raises(CredentialError):
        iddoc.parse_symbol_text("CODE128", "1" * 17, today=date(2022, 5, 1))


def _td1(number: str, optional: str) -> str:
    """A TD1 of the specimen holder whose document number runs into the optional data
    (ICAO 9303-5 §4.2.4: '<' in the check-digit position, the digit after the number)."""
    cd = iddoc.check_digit
    if len(number) > 9:
        line1 = "I<NLD" + number[:9] + "<" + (number[9:] + cd(number) + optional + "<" * 15)[:15]
    else:
        line1 = "I<NLD" + number + cd(number) + (optional + "<" * 15)[:15]
    line2 = "7408122F1204159NLD" + "<" * 11
    line2 += cd(line1[5:30] + line2[0:7] + line2[8:15] + line2[18:29])
    return line1 + "\n" + line2 + "\nERIKSSON<<ANNA<MARIA<<<<<<<<<<"


@pytest.mark.parametrize("number", ["D23145890", "D231458901", "D23145890123"])
def test_long_document_numbers_continue_in_the_optional_data(number: str) -> None:
    doc = iddoc.parse_mrz(_td1(number, ""), today=date(2011, 1, 1))
    assert doc.number == number


def test_a_long_number_cut_to_its_check_digit_alone_is_unreadable() -> None:
    """'<' in the check-digit position followed by a single character: no continuation
    and no check digit left (the composite still matches, so only this rule refuses)."""
    cd = iddoc.check_digit
    line1 = "I<NLD" + "D23145890" + "<" + "7" + "<" * 14
    line2 = "7408122F1204159NLD" + "<" * 11
    line2 += cd(line1[5:30] + line2[0:7] + line2[8:15] + line2[18:29])
    with pytest.raises(CredentialError, match="cut short"):
        iddoc.parse_mrz(line1 + "\n" + line2 + "\nERIKSSON<<ANNA<MARIA<<<<<<<<<<")


@pytest.mark.parametrize(
    "expr",
    [
        {"nope": [1, 2]},  # an operator CertLogic does not have
        {"extractFromUVCI": [1, 0]},  # operand must be a string or null
        {"and": [True]},  # and/or take at least two operands
        {"or": [True]},
    ],
)
def test_certlogic_refuses_what_the_specification_does_not_define(expr: object) -> None:
    with pytest.raises(cl.CertLogicError):
        cl.evaluate(expr, {})


def test_certlogic_depth_cap() -> None:
    deep: object = True
    for _ in range(cl.MAX_DEPTH + 5):
        deep = {"if": [True, deep, False]}
    with pytest.raises(cl.CertLogicError, match="nested too deeply"):
        cl.evaluate(deep, {})


@pytest.mark.parametrize("number", ["D23145890", "D231458901", "D2314589012"])
def test_long_td2_document_numbers_continue_in_the_optional_data(number: str) -> None:
    """ICAO 9303-6 §4.2.2 note: as in TD1, a TD2 number past nine characters continues
    in the optional data (positions 29-35), its check digit after it."""
    cd = iddoc.check_digit
    if len(number) > 9:
        head = number[:9] + "<"
        optional = (number[9:] + cd(number) + "<" * 7)[:7]
    else:
        head = number + cd(number)
        optional = "<" * 7
    body = head + "NLD" + "740812" + cd("740812") + "F" + "120415" + cd("120415") + optional
    line2 = body + cd(body[0:10] + body[13:20] + body[21:35])
    line1 = "I<NLDERIKSSON<<ANNA<MARIA<<<<<<<<<<<"
    assert iddoc.parse_mrz(line1 + "\n" + line2, today=date(2011, 1, 1)).number == number


def test_certlogic_names_an_unknown_operator() -> None:
    """Refused at once, by name (not by whatever the dispatcher meets later)."""
    with pytest.raises(cl.CertLogicError, match="unrecognised operator: 'nosuchop'"):
        cl.evaluate({"nosuchop": [1, 2]}, {})


def test_certlogic_strict_equality_never_equates_a_list_with_a_string() -> None:
    """["a"] and "a" have the same length and items, but not the same type."""
    assert cl.evaluate({"===": [{"var": "x"}, "a"]}, {"x": ["a"]}) is False
    assert cl.evaluate({"===": ["a", {"var": "x"}]}, {"x": ["a"]}) is False
    assert cl.evaluate({"===": [{"var": "x"}, {"var": "x"}]}, {"x": ["a"]}) is True


def test_certlogic_names_a_date_time_that_is_not_a_string() -> None:
    with pytest.raises(cl.CertLogicError, match="not a date-time string: 5"):
        cl.evaluate({"plusTime": [5, 1, "day"]}, {})


def test_certlogic_extract_from_uvci_counts_fragments_from_zero() -> None:
    uvci = "URN:UVCI:01:NL:187/37512422923"
    assert cl.evaluate({"extractFromUVCI": [uvci, 0]}, {}) == "01"
    assert cl.evaluate({"extractFromUVCI": [uvci, 1]}, {}) == "NL"


def test_certlogic_plus_takes_exactly_two_operands() -> None:
    assert cl.evaluate({"+": [1, 2]}, {}) == 3
    with pytest.raises(cl.CertLogicError, match="operands"):
        cl.evaluate({"+": [1, 2, 3]}, {})


def test_certlogic_validate_counts_arity_and_depth_exactly() -> None:
    assert cl.validate({"===": [1, 2]}) == [] and cl.validate({"===": [1, 2, 3]}) != []
    assert cl.validate({"extractFromUVCI": ["x", 1]}) == []
    assert cl.validate({"extractFromUVCI": ["x", 1, 2]}) != []
    nested: object = True
    for _ in range(cl.MAX_DEPTH):  # arrays nested to the cap: still valid
        nested = [nested]
    assert cl.validate(nested) == []
    assert cl.validate([nested]) == ["expression nested too deeply"]

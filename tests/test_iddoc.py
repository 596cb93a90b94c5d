"""ID document parsing: ICAO 9303 check digits, GB 11643 numbers, barcodes, privacy."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pytest

from sentinel.credentials import iddoc
from sentinel.credentials.identity import icao_name
from sentinel.credentials.model import CredentialKind
from sentinel.credentials.reader import ReadContext, read
from sentinel.credentials.trustlist import TrustList
from sentinel.errors import CredentialError
from sentinel.reasons import ReasonCode
from sentinel.scan import Symbol, synth
from sentinel.trust.provider import StatusEntry

TODAY = date(2024, 1, 1)
# The specimen MRZs of ICAO 9303 parts 4 (TD3), 5 (TD1) and 6 (TD2)
SPECIMEN_TD3 = (
    "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL898902C36UTO7408122F1204159ZE184226B<<<<<10"
)
SPECIMEN_TD1 = (
    "I<UTOD231458907<<<<<<<<<<<<<<<\n7408122F1204159UTO<<<<<<<<<<<6\nERIKSSON<<ANNA<MARIA<<<<<<<<<<"
)
SPECIMEN_TD2 = "I<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<\nD231458907UTO7408122F1204159<<<<<<<6"
# ICAO 9303 specimens carry the fictional state "UTO", which a device refuses; the same
# zones with a real state (no check digit covers the state, so all digits still match)
TD3, TD2, TD1 = (m.replace("UTO", "NLD") for m in (SPECIMEN_TD3, SPECIMEN_TD2, SPECIMEN_TD1))
CN = "11010519491231002X"  # the GB 11643-1999 example


@pytest.mark.parametrize(
    ("mrz", "number", "fmt"),
    [
        (SPECIMEN_TD3, "L898902C3", "TD3"),
        (SPECIMEN_TD1, "D23145890", "TD1"),
        (SPECIMEN_TD2, "D23145890", "TD2"),
    ],
)
def test_icao_specimens_parse(mrz: str, number: str, fmt: str) -> None:
    doc = iddoc.parse_mrz(mrz, today=TODAY, specimens=True)
    assert (doc.number, doc.source, doc.issuing_country) == (number, fmt, "UTO")
    # the specimen state is not a real one: a device refuses it
    with pytest.raises(CredentialError):
        iddoc.parse_mrz(mrz, today=TODAY)
    assert doc.expiry == date(2012, 4, 15)
    assert doc.birth_date == date(1974, 8, 12)
    assert (doc.surname, doc.given_names) == ("ERIKSSON", "ANNA MARIA")


def test_check_digit_matches_icao_example() -> None:
    # ICAO 9303-3 §4.9 worked example: 520727 -> 3
    assert iddoc.check_digit("520727") == "3"
    assert iddoc.check_digit("L898902C3") == "6"


def _protected_positions(mrz: str) -> list[tuple[int, int]]:
    """(line, column) of every character a check digit covers, check digits included."""
    lines = mrz.split("\n")
    fmt = iddoc.mrz_format(lines)
    if fmt == "TD1":
        return [(0, c) for c in range(5, 30)] + [
            (1, c) for c in range(30) if c not in (7, 15, 16, 17)
        ]
    width = len(lines[1])
    return [(1, c) for c in range(width) if not 10 <= c <= 12 and c != 20]


@pytest.mark.parametrize("mrz", [TD1, TD2, TD3])
def test_every_single_character_mutation_is_refused(mrz: str) -> None:
    """Each protected character, replaced by every other MRZ character, is refused —
    except replacements whose ICAO value differs by a multiple of ten in a field that
    allows letters (the 7-3-1 check digit cannot see those); they are counted and must
    match the arithmetic exactly, so no other mutation slips through."""
    lines = mrz.split("\n")
    accepted, blind = [], []
    for li, col in _protected_positions(mrz):
        orig = lines[li][col]
        for ch in sorted(iddoc.MRZ_CHARS - {orig}):
            mutated = list(lines)
            mutated[li] = mutated[li][:col] + ch + mutated[li][col + 1 :]
            try:
                doc = iddoc.parse_mrz("\n".join(mutated), today=TODAY)
            except CredentialError as exc:
                assert exc.reason is ReasonCode.ID_UNREADABLE
                continue
            accepted.append((li, col, ch, doc.number))
        for ch in sorted(iddoc.MRZ_CHARS - {orig}):
            diff = iddoc.char_value(ch) - iddoc.char_value(orig)
            numeric = orig.isdigit() and ch.isdigit()
            if diff % 10 == 0 and not numeric:
                blind.append((li, col, ch))
    # every accepted mutation is a check-digit blind spot, never anything else
    assert {(a[0], a[1], a[2]) for a in accepted} <= set(blind)
    # and no digit-only field (dates, check digits) accepts any mutation at all
    assert all(not a[2].isdigit() or not lines[a[0]][a[1]].isdigit() for a in accepted)


def test_date_fields_refuse_letters_that_fool_the_check_digit() -> None:
    # 'A' (10) in place of '0' keeps the 7-3-1 sum mod 10, but a date is digits only
    lines = TD3.split("\n")
    bad = lines[1][:13] + "7A08122" + lines[1][20:]
    with pytest.raises(CredentialError):
        iddoc.parse_mrz(lines[0] + "\n" + bad, today=TODAY)


def test_random_valid_mrzs_round_trip() -> None:
    rng = np.random.default_rng(7)
    for fmt in ("TD1", "TD2", "TD3") * 20:
        doc = iddoc.parse_mrz(synth.make_mrz(fmt, rng), today=TODAY)
        assert doc.source == fmt and doc.number


@pytest.mark.parametrize(
    "text",
    ["", "P<UTO", TD3.replace("\n", ""), TD3.lower() + "é", "\x00" * 88, TD3 + "\nEXTRA"],
)
def test_bad_input_is_refused_not_crashed(text: str) -> None:
    with pytest.raises(CredentialError) as exc:
        iddoc.parse_mrz(text, today=TODAY)
    assert exc.value.reason is ReasonCode.ID_UNREADABLE


def test_cn_id_check_char_and_every_mutation() -> None:
    assert iddoc.cn_check_char(CN[:17]) == "X"
    assert iddoc.parse_cn_id(CN, today=TODAY).birth_date == date(1949, 12, 31)
    for i in range(18):
        for ch in "0123456789X":
            if ch == CN[i] or (ch == "X" and i < 17):
                continue
            with pytest.raises(CredentialError):
                iddoc.parse_cn_id(CN[:i] + ch + CN[i + 1 :], today=TODAY)
    for i in range(17):  # adjacent transpositions are caught by MOD 11-2 too
        if CN[i] != CN[i + 1]:
            swapped = CN[:i] + CN[i + 1] + CN[i] + CN[i + 2 :]
            with pytest.raises(CredentialError):
                iddoc.parse_cn_id(swapped, today=TODAY)


def test_random_cn_ids_are_valid() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        assert iddoc.parse_cn_id(synth.make_cn_id(rng), today=TODAY).issuing_country == "CHN"


def test_aamva_pdf417_text() -> None:
    text = (
        "@\n\x1e\rANSI 636014040002DL00410278ZC03190008DLDAQD1234567\nDCSPUBLIC\nDACJOHN\n"
        "DBB01311974\nDBA08312030\nDCGUSA\n"
    )
    doc = iddoc.parse_symbol_text("PDF417", text)
    assert (doc.number, doc.issuing_country, doc.expiry) == ("D1234567", "USA", date(2030, 8, 31))
    with pytest.raises(CredentialError):
        iddoc.parse_symbol_text("PDF417", "@\nANSI 6360\nDCSX\n")


def test_a_canadian_aamva_card_is_canadas_with_its_dates_year_first() -> None:
    """AAMVA DL/ID 2020 §D.12.5: DCG names the country, and Canadian dates are CCYYMMDD."""
    text = (
        "@\n\x1e\rANSI 636012040002DL00410278ZO03190008DLDAQA1234-56789-01234\nDCSPUBLIC\n"
        "DACJOHN\nDBB19740131\nDBA20300831\nDCGCAN\n"
    )
    doc = iddoc.parse_symbol_text("PDF417", text)
    assert (doc.number, doc.issuing_country, doc.expiry) == (
        "A12345678901234",
        "CAN",
        date(2030, 8, 31),
    )
    assert doc.birth_date == date(1974, 1, 31)
    # two-digit months: 11 and 12 are not 1 and 2
    late = iddoc.parse_symbol_text(
        "PDF417", text.replace("DBB19740131", "DBB19741130").replace("DBA20300831", "DBA20301231")
    )
    assert (late.birth_date, late.expiry) == (date(1974, 11, 30), date(2030, 12, 31))


def test_a_visa_of_the_passport_shape_is_an_mrv_a() -> None:
    """ICAO 9303-7's MRV-A (2×44, code V), as document readers' manuals print it: a
    format of its own, not a passport."""
    visa = (
        "V<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL898902C<3UTO6908061F9406236ZE184226B<<<<<<<"
    )
    assert iddoc.mrz_format(visa.split("\n")) == "MRV-A"
    doc = iddoc.parse_mrz(visa, today=date(1994, 1, 1), specimens=True)
    assert doc.doc_type.startswith("V") and doc.number == "L898902C"
    # and MRV-B, 2×36 with code V, as the same manuals print it
    visa_b = "V<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<\nL898902C<3UTO6908061F9406236ZE184226"
    assert iddoc.mrz_format(visa_b.split("\n")) == "MRV-B"
    assert iddoc.parse_mrz(visa_b, today=date(1994, 1, 1), specimens=True).number == "L898902C"


def test_number_never_in_repr_and_masked() -> None:
    doc = iddoc.parse_mrz(TD3, today=TODAY)
    assert "L898902C3" not in repr(doc) and "ERIKSSON" not in repr(doc)
    assert doc.masked_number == "L8*****C3"
    assert iddoc.mask_names(doc) == "E******* A*** M****, 1974"


class _Status:
    def __init__(self) -> None:
        self.asked: list[tuple[str, str, str]] = []

    def lookup_document(self, doc_type: str, country: str, number: str) -> StatusEntry | None:
        self.asked.append((doc_type, country, number))
        if number == "L898902C3":
            return StatusEntry("green", datetime(2030, 1, 1, tzinfo=UTC))
        return None

    def lookup_subject(self, subject_id: str) -> StatusEntry | None:
        return None


def test_reader_routes_mrz_to_a_minimized_credential() -> None:
    status = _Status()
    ctx = ReadContext(
        trust=TrustList.from_certificates([], country="XX"),
        now=datetime(2011, 1, 1, tzinfo=UTC),
        pseudonym_key=b"k" * 32,
        status=status,
    )
    cred = read(Symbol("MRZ", TD3, TD3.encode()), ctx)
    assert cred.kind is CredentialKind.ID_DOCUMENT
    assert cred.status == "green" and status.asked == [("P", "NLD", "L898902C3")]
    assert cred.status_valid_until == datetime(2030, 1, 1, tzinfo=UTC)  # the entry's own
    assert cred.issuer_country == "NLD"  # the specimen with a real state (UTO is not on the list)
    assert "L898902C3" not in repr(cred) and "ERIKSSON" not in repr(cred)
    broken = TD3[:-1] + "1"
    with pytest.raises(CredentialError) as exc:
        read(Symbol("MRZ", broken, broken.encode()), ctx)
    assert exc.value.reason is ReasonCode.ID_UNREADABLE


def test_identity_pseudonym_matches_the_dcc_one() -> None:
    from sentinel.credentials.dcc import holder_pseudonym

    doc = iddoc.parse_mrz(TD3, today=TODAY)
    key = b"p" * 32
    dgc = {"nam": {"fnt": "ERIKSSON", "gnt": "ANNA<MARIA"}, "dob": "1974-08-12"}
    assert iddoc.doc_pseudonym(doc, key) == holder_pseudonym(dgc, key)
    other = {"nam": {"fnt": "ERIKSSON", "gnt": "ANNA<MARIA"}, "dob": "1974-08-13"}
    assert iddoc.doc_pseudonym(doc, key) != holder_pseudonym(other, key)
    assert icao_name("Müller-Lüdenscheidt") == "MUELLER<LUEDENSCHEIDT"


def test_status_key_is_keyed() -> None:
    doc = iddoc.parse_mrz(TD3, today=TODAY)
    a, b = iddoc.status_key(doc, b"a" * 32), iddoc.status_key(doc, b"b" * 32)
    assert a != b and b"L898902C3" not in a


@pytest.mark.parametrize("mrz", [TD3, TD2, TD1])
def test_a_zone_with_one_line_of_the_wrong_width_is_not_a_zone(mrz: str) -> None:
    lines = mrz.split("\n")
    for i in range(len(lines)):
        cut = [ln[:-1] if k == i else ln for k, ln in enumerate(lines)]
        with pytest.raises(CredentialError, match="not a TD1, TD2, TD3 or MRV") as exc:
            iddoc.parse_mrz("\n".join(cut), today=TODAY)
        assert exc.value.reason is ReasonCode.ID_UNREADABLE


@pytest.mark.parametrize("bad", ["-", ".", "/", "~"])
def test_a_name_with_a_character_outside_the_mrz_alphabet_is_refused(bad: str) -> None:
    """Names carry no check digit: only the alphabet check stops such a read."""
    text = TD3.replace("ERIKSSON<<ANNA", f"ERIKSSON<<AN{bad}A")
    with pytest.raises(CredentialError, match="outside A-Z 0-9 <"):
        iddoc.parse_mrz(text, today=TODAY)


def test_a_barcode_is_an_id_only_when_a_whole_zone_or_number_is_in_it() -> None:
    assert not iddoc.looks_like_id("CODE128", "D12345678901\n" + "X" * 44)
    assert not iddoc.looks_like_id("PDF417", "X" * 44 + "\n" + "Y" * 30)
    assert iddoc.looks_like_id("PDF417", "issuer header\n" + TD3)
    doc = iddoc.parse_symbol_text("PDF417", "issuer header\n" + TD3, today=TODAY)
    assert (doc.number, doc.issuing_country, doc.source) == ("L898902C3", "NLD", "TD3")


def test_short_numbers_are_all_stars_and_long_ones_keep_two_each_side() -> None:
    assert [iddoc.mask_number(n) for n in ("", "AB", "1234")] == ["", "**", "****"]
    assert iddoc.mask_number("12345") == "12*45"


def test_no_birth_date_gives_no_pseudonym() -> None:
    from dataclasses import replace

    doc = iddoc.parse_mrz(TD3, today=TODAY)
    assert iddoc.doc_pseudonym(doc, b"k" * 32)  # a birth date: a pseudonym
    assert iddoc.doc_pseudonym(replace(doc, birth_date=None), b"k" * 32) == ""


def _icao_cd(data: str) -> str:
    """ICAO 9303-3 §4.9 written out here (weights 7, 3, 1; digits, A=10..Z=35, '<'=0)."""
    val = {**{str(i): i for i in range(10)}, "<": 0}
    val |= {chr(ord("A") + i): 10 + i for i in range(26)}
    return str(sum(val[c] * (7, 3, 1)[i % 3] for i, c in enumerate(data)) % 10)


def test_a_birth_date_that_does_not_exist_is_unreadable_not_a_crash() -> None:
    """31 February with every check digit right (recomputed by ``_icao_cd``): refused as an
    unreadable zone naming the field, a CredentialError like any other bad read."""
    l1, l2 = TD3.split("\n")
    dob = "740231"
    l2 = l2[:13] + dob + _icao_cd(dob) + l2[20:43]
    l2 += _icao_cd(l2[0:10] + l2[13:20] + l2[21:43])
    assert _icao_cd(l2[0:9]) == l2[9] and len(l2) == 44
    with pytest.raises(CredentialError, match="birth date is not a real date"):
        iddoc.parse_mrz(l1 + "\n" + l2, today=TODAY)


def _with_birth(dob: str) -> str:
    l1, l2 = TD3.split("\n")
    l2 = l2[:13] + dob + _icao_cd(dob) + l2[20:43]
    l2 += _icao_cd(l2[0:10] + l2[13:20] + l2[21:43])
    return l1 + "\n" + l2


def test_a_two_digit_birth_year_is_the_latest_century_not_in_the_future() -> None:
    """YYMMDD has no century: on 1 January 2024, 231231 is 2023, 240101 (today) 2024,
    400101 1940, and 240315 (later this year, not yet come) 1924."""
    born = {d: iddoc.parse_mrz(_with_birth(d), today=TODAY).birth_date for d in
            ("231231", "240101", "400101", "000229")}  # fmt: skip
    assert born == {
        "231231": date(2023, 12, 31),
        "240101": date(2024, 1, 1),
        "400101": date(1940, 1, 1),
        "000229": date(2000, 2, 29),
    }
    later = iddoc.parse_mrz(_with_birth("240315"), today=TODAY).birth_date
    assert later == date(1924, 3, 15)  # 15 March 2024 has not come: a 1924 birth


def test_the_credential_shows_staff_the_masked_name_and_birth_year() -> None:
    """What the kiosk shows staff to compare with the visitor: masked names and the birth
    year; a resident number carries no name, so only the year its digits give."""
    now = datetime(2011, 1, 1, tzinfo=UTC)
    cred = iddoc.to_credential("MRZ", TD3, now, None, b"k" * 32)
    assert cred.display_name == "E******* A*** M****, 1974"
    cn = iddoc.to_credential("ID_NUMBER", CN, now, None, b"k" * 32)
    assert cn.display_name == "1949" and CN not in repr(cn)


def test_a_td2_number_that_fills_the_optional_data_to_its_last_position() -> None:
    """ICAO 9303-6: a document number past nine characters goes on in the optional data
    (positions 29-35 of line 2) and ends with its check digit; position 36 is the
    composite. A 15-character number fills all seven: the composite digit must not be
    taken for part of it. Check digits recomputed by ``_icao_cd``."""
    l1, base = TD2.split("\n")
    number = "D23145890ABCDEF"
    cd = _icao_cd(number)
    for expiry in ("301231", "310115", "290630"):  # the dates move the composite, not cd
        middle = base[10:21] + expiry + _icao_cd(expiry)
        l2 = number[:9] + "<" + middle + number[9:] + cd
        l2 += _icao_cd(l2[0:10] + l2[13:20] + l2[21:35])
        if l2[35] != _icao_cd(number + cd):  # the composite is not also a valid digit here
            break
    assert len(l2) == 36 and l2[35] != _icao_cd(number + cd)
    doc = iddoc.parse_mrz(l1 + "\n" + l2, today=TODAY)
    assert doc.number == number


def test_a_resident_number_is_read_in_any_case_and_says_where_it_came_from() -> None:
    """GB 11643's check character ``X`` read or typed as ``x`` is the same number; the
    document says it came from a resident identity number (``scan --json``'s format)."""
    doc = iddoc.parse_cn_id(CN.lower(), today=TODAY)
    assert doc.number == CN and doc.source == "CN_ID"


def test_a_name_field_led_by_a_filler_has_no_space_before_the_surname() -> None:
    """A misread filler at the start of TD3's name field (no check digit covers names):
    the names are the letters, without the space a ``<`` would leave (ICAO 9303-3 §4.6)."""
    mrz = TD3.replace("P<NLDERIKSSON<<ANNA<MARIA<", "P<NLD<ERIKSSON<<ANNA<MARIA")
    doc = iddoc.parse_mrz(mrz, today=TODAY)
    assert (doc.surname, doc.given_names) == ("ERIKSSON", "ANNA MARIA")


def test_aamva_given_names_from_dac_or_the_older_dct() -> None:
    """AAMVA DL/ID: the first name is DAC (2009 on); cards of the 2000 and 2003 versions
    carry the given names in DCT instead. Both reach the document (the masked name)."""
    head = "@\n\x1e\rANSI 636014040002DL00410278ZC03190008DLDAQD1234567\nDCSPUBLIC\n"
    tail = "DBB01311974\nDBA08312030\nDCGUSA\n"
    assert iddoc.parse_symbol_text("PDF417", head + "DACJOHN\n" + tail).given_names == "JOHN"
    assert iddoc.parse_symbol_text("PDF417", head + "DCTJOHN,Q\n" + tail).given_names == "JOHN,Q"


@pytest.mark.parametrize("sex", ["M", "F", "X", "<"])
def test_each_sex_code_icao_allows_is_read(sex: str) -> None:
    """ICAO 9303-4 §4.2.2: F, M, or X (unspecified), or the filler; no check digit covers
    the field, so the specimen's digits still hold with any of them."""
    line1, line2 = TD3.split("\n")
    doc = iddoc.parse_mrz(line1 + "\n" + line2[:20] + sex + line2[21:], today=TODAY)
    assert doc.number == "L898902C3"


def test_an_unknown_sex_code_is_refused() -> None:
    line1, line2 = TD3.split("\n")
    with pytest.raises(CredentialError):
        iddoc.parse_mrz(line1 + "\n" + line2[:20] + "Q" + line2[21:], today=TODAY)


def test_a_holder_with_no_given_name_is_masked_without_a_gap() -> None:
    line1, line2 = TD3.split("\n")
    only_surname = "P<NLDERIKSSON" + "<" * 31
    doc = iddoc.parse_mrz(only_surname + "\n" + line2, today=TODAY)
    assert iddoc.mask_names(doc) == "E*******, 1974"


def _fields(doc: iddoc.IdDocument) -> tuple:
    return (doc.doc_type, doc.issuing_country, doc.number, doc.expiry, doc.birth_date,
            doc.surname, doc.given_names, doc.nationality, doc.source)  # fmt: skip


@pytest.mark.parametrize(
    ("mrz", "want"),
    [
        # ICAO 9303-4 Appendix A (TD3), -5 (TD1), -6 (TD2): the specimen zones and the data
        # their visual zones print (ERIKSSON, ANNA MARIA, born 12 Aug 1974, expires 15 Apr 2012)
        (SPECIMEN_TD3, ("P", "UTO", "L898902C3", date(2012, 4, 15), date(1974, 8, 12),
                        "ERIKSSON", "ANNA MARIA", "UTO", "TD3")),
        (SPECIMEN_TD1, ("I", "UTO", "D23145890", date(2012, 4, 15), date(1974, 8, 12),
                        "ERIKSSON", "ANNA MARIA", "UTO", "TD1")),
        (SPECIMEN_TD2, ("I", "UTO", "D23145890", date(2012, 4, 15), date(1974, 8, 12),
                        "ERIKSSON", "ANNA MARIA", "UTO", "TD2")),
    ],
    ids=["TD3", "TD1", "TD2"],
)  # fmt: skip
def test_every_field_of_the_icao_specimens_is_read(mrz: str, want: tuple) -> None:
    doc = iddoc.parse_mrz(mrz, today=date(1990, 1, 1), specimens=True)
    got = _fields(doc)
    assert got == want


@pytest.mark.parametrize("width", [44, 36], ids=["MRV-A", "MRV-B"])
def test_every_field_of_a_visa_is_read(width: int) -> None:
    """ICAO 9303-7 §4.2.2: a visa's zone gives the same fields as a passport's (the
    specimen holder, a visa valid to 2030; the expiry's check digit per 9303-3 §4.9)."""
    expiry = "300415"
    line1 = ("V<UTOERIKSSON<<ANNA<MARIA" + "<" * 44)[:width]
    line2 = "L898902C<3UTO7408122F" + expiry + iddoc.check_digit(expiry)
    line2 = (line2 + "ZE184226B" + "<" * 16)[:width]
    doc = iddoc.parse_mrz(line1 + "\n" + line2, today=TODAY, specimens=True)
    got = _fields(doc)
    fmt = "MRV-A" if width == 44 else "MRV-B"
    assert got == ("V", "UTO", "L898902C", date(2030, 4, 15), date(1974, 8, 12),
                   "ERIKSSON", "ANNA MARIA", "UTO", fmt)  # fmt: skip


def test_an_id_document_pseudonym_is_the_keyed_hmac_of_name_and_birth_date() -> None:
    """ICAO 9303's specimen holder ERIKSSON, ANNA MARIA, born 1974-08-12: HMAC-SHA256
    (RFC 2104) of the first name parts and the date, 128 bits, computed here by hand."""
    import hashlib
    import hmac

    key = b"p" * 32
    doc = iddoc.parse_mrz(TD3, today=TODAY)
    want = hmac.new(key, b"ERIKSSON|ANNA|1974-08-12", hashlib.sha256).hexdigest()[:32]
    assert iddoc.doc_pseudonym(doc, key) == want
    cred = iddoc.to_credential("MRZ", TD3, datetime(2011, 1, 1, tzinfo=UTC), None, key)
    assert cred.holder_pseudonym == want


def _short_number(fmt: str, number9: str) -> str:
    """The NLD specimen of ``fmt`` with a document number shorter than its nine-character
    field (fillers at the end), every check digit recomputed by ``_icao_cd``."""
    if fmt == "TD1":
        l1, l2, l3 = TD1.split("\n")
        l1 = l1[:5] + number9 + _icao_cd(number9) + l1[15:]
        l2 = l2[:29] + _icao_cd(l1[5:30] + l2[0:7] + l2[8:15] + l2[18:29])
        return "\n".join((l1, l2, l3))
    l1, l2 = (TD3 if fmt == "TD3" else TD2).split("\n")
    end = 43 if fmt == "TD3" else 35
    l2 = number9 + _icao_cd(number9) + l2[10:end]
    return l1 + "\n" + l2 + _icao_cd(l2[0:10] + l2[13:20] + l2[21:end])


@pytest.mark.parametrize("fmt", ["TD1", "TD2", "TD3"])
def test_a_short_document_number_is_read_without_its_fillers(fmt: str) -> None:
    doc = iddoc.parse_mrz(_short_number(fmt, "AB12345<<"), today=TODAY)
    assert (doc.number, doc.source) == ("AB12345", fmt)


def test_number_names_and_birth_date_stay_out_of_a_document_s_repr() -> None:
    doc = iddoc.parse_mrz(TD3, today=TODAY)
    text = repr(doc)
    assert "L898902C3" not in text and "ERIKSSON" not in text and "ANNA" not in text
    assert "1974" not in text and "birth_date" not in text
    assert "NLD" in text  # what is not personal stays readable
    bare = iddoc.IdDocument("P", "NLD", "X1", None)
    assert (bare.birth_date, bare.surname, bare.given_names) == (None, "", "")


def test_an_aamva_card_s_names_and_its_older_aamva_header() -> None:
    """AAMVA DL/ID: DCS family name, DAC given name (DCT on cards before 2009), and the
    header's file type 'ANSI ' (from 2000) or 'AAMVA' (the 1990s versions), within the
    header's first 32 characters."""
    text = (
        "@\n\x1e\rANSI 636014040002DL00410278ZC03190008DLDAQD1234567\nDCSPUBLIC\nDACJOHN\n"
        "DBB01311974\nDBA08312030\nDCGUSA\n"
    )
    doc = iddoc.parse_symbol_text("PDF417", text)
    assert (doc.surname, doc.given_names, doc.source, doc.doc_type) == (
        "PUBLIC",
        "JOHN",
        "AAMVA",
        "DL",
    )
    old = text.replace("ANSI 6360140400", "AAMVA6360140100").replace("DACJOHN", "DCTJOHN")
    doc = iddoc.parse_symbol_text("PDF417", old)
    assert (doc.number, doc.given_names, doc.expiry) == ("D1234567", "JOHN", date(2030, 8, 31))
    # 'AAMVA' at characters 29-33: past the first 32
    late = "@\n\x1e\r" + "X" * 24 + "AAMVA6360140100DL00410278DLDAQD1234567\nDBA08312030\n"
    assert late.index("AAMVA") == 28
    with pytest.raises(CredentialError, match="not an AAMVA"):
        iddoc.parse_aamva(late)


@pytest.mark.parametrize("kind", ["QRCODE", "DATAMATRIX", "EAN13"])
def test_an_id_document_s_text_in_another_kind_of_symbol_is_not_an_id_document(kind) -> None:
    """Only the symbologies ID documents use carry one: a QR code holding an AAMVA text or
    an MRZ is somebody's copy, not a document (and never parsed as one)."""
    aamva = "@\n\x1e\rANSI 636014040002DL00410278ZC03190008DLDAQD1234567\nDBA08312030\nDCGUSA\n"
    for text in (aamva, TD3):
        with pytest.raises(CredentialError, match="not an ID document"):
            iddoc.parse_symbol_text(kind, text)
    assert iddoc.parse_symbol_text("PDF417", aamva).number == "D1234567"


def test_specimens_allow_the_specimen_state_and_no_other_unknown_code() -> None:
    """``specimens=True`` lets ICAO's fictional UTO through, not any unlisted code: a
    misread 'XUT' stays refused (no check digit covers the issuing state)."""
    misread = SPECIMEN_TD3.replace("P<UTO", "P<XUT", 1)
    with pytest.raises(CredentialError, match="issuing state is not a country code"):
        iddoc.parse_mrz(misread, today=TODAY, specimens=True)
    assert iddoc.parse_mrz(SPECIMEN_TD3, today=TODAY, specimens=True).issuing_country == "UTO"


def test_a_td1_number_with_its_check_digit_and_optional_data_after_it() -> None:
    """ICAO 9303-5 §4.2.2: optional data in TD1 line 1 after a nine-character number and
    its own check digit is not a long number's continuation."""
    l1, l2, l3 = TD1.split("\n")
    l1 = l1[:15] + "ABC123<<<<<<<<<"
    l2 = l2[:29] + _icao_cd(l1[5:30] + l2[0:7] + l2[8:15] + l2[18:29])
    doc = iddoc.parse_mrz("\n".join((l1, l2, l3)), today=TODAY)
    assert doc.number == "D23145890"


def test_an_18_character_text_that_is_no_resident_number_is_not_an_id_document() -> None:
    for text in ("ABCDEFGHIJKLMNOPQR", "1234-5678-9012-345"):  # no resident number in it
        with pytest.raises(CredentialError, match="PDF417 symbol is not an ID document"):
            iddoc.parse_symbol_text("PDF417", text)


@pytest.mark.parametrize(
    "body",
    [
        "1101051949123100",
        "110105194912310021",
        "1101051949123100A",
        "１１０１０５１９４９１２３１００２",
    ],
)
def test_the_gb11643_check_character_wants_exactly_17_ascii_digits(body: str) -> None:
    with pytest.raises(ValueError, match="17 digits"):
        iddoc.cn_check_char(body)
    assert iddoc.cn_check_char("11010519491231002") == "X"  # GB 11643-1999's own example


def test_a_resident_number_inside_longer_pdf417_text_is_not_an_id_document() -> None:
    """A PDF417 or Code 128 symbol is a resident identity number only when it is the
    18 characters alone (GB 11643's length); text around it makes it something else."""
    for text in ("NO. 11010519491231002X", "11010519491231002X 2024"):
        assert not iddoc.looks_like_id("PDF417", text)
        with pytest.raises(CredentialError, match="PDF417 symbol is not an ID document"):
            iddoc.parse_symbol_text("PDF417", text)
    assert iddoc.looks_like_id("PDF417", "11010519491231002X")
    assert iddoc.parse_symbol_text("PDF417", "11010519491231002X").number == "11010519491231002X"

"""Machine readable visas (ICAO 9303-7, MRV-A 2×44 and MRV-B 2×36): parsed with every
check digit the format has, ICAO's lists, real dates, and never as a fallback for a
passport whose line 2 failed its TD3 checks.

The oracle is the specimen of ICAO Doc 9303 Part 7 (Machine Readable Visas), Appendix A
(the "Utopia" visa of Anna Maria Eriksson), as many independent MRZ readers quote it:
MRV-A ``V<UTOERIKSSON<<ANNA<MARIA<<…`` / ``L8988901C4XXX4009078F96121096ZE184226B<<<<<<``,
MRV-B the same to 36 characters with empty optional data.
"""

from __future__ import annotations

from datetime import date

import pytest

from sentinel.credentials import icao_codes, iddoc
from sentinel.errors import CredentialError
from sentinel.reasons import ReasonCode

TODAY = date(2024, 1, 1)
MRV_A = "V<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL8988901C4XXX4009078F96121096ZE184226B<<<<<<"
MRV_B = "V<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<\nL8988901C4XXX4009078F9612109<<<<<<<<"
# ICAO 9303-4's passport specimen (Appendix to part 4), the same holder
TD3 = "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL898902C36UTO7408122F1204159ZE184226B<<<<<10"


def _parse(text: str) -> iddoc.IdDocument:
    return iddoc.parse_mrz(text, today=TODAY, specimens=True)


def _with(mrz: str, line: int, col: int, text: str) -> str:
    lines = mrz.split("\n")
    lines[line] = lines[line][:col] + text + lines[line][col + len(text) :]
    return "\n".join(lines)


def _refused(text: str) -> str:
    with pytest.raises(CredentialError) as exc:
        _parse(text)
    assert exc.value.reason is ReasonCode.ID_UNREADABLE
    return exc.value.detail


@pytest.mark.parametrize(("text", "fmt"), [(MRV_A, "MRV-A"), (MRV_B, "MRV-B")])
def test_the_icao_specimens_are_read_field_by_field(text: str, fmt: str) -> None:
    doc = _parse(text)
    assert doc.source == fmt
    assert (doc.doc_type, doc.issuing_country, doc.number) == ("V", "UTO", "L8988901C")
    assert doc.nationality == "XXX"  # 9303-3: nationality unspecified
    assert doc.birth_date == date(1940, 9, 7)
    assert doc.expiry == date(2096, 12, 10)  # "96": iddoc reads expiries as 20YY
    assert (doc.surname, doc.given_names) == ("ERIKSSON", "ANNA MARIA")
    assert iddoc.mrz_format(text.split("\n")) == fmt


def test_the_specimen_state_needs_specimens_and_a_real_state_reads() -> None:
    with pytest.raises(CredentialError):
        iddoc.parse_mrz(MRV_A, today=TODAY)
    real = _with(MRV_A, 0, 2, "NLD")
    assert iddoc.parse_mrz(real, today=TODAY).issuing_country == "NLD"


# (line 2 column, what): every check digit an MRV has (9303-7 §4.2.2.2)
CHECKS = [(9, "document number"), (19, "birth date"), (27, "expiry date")]


@pytest.mark.parametrize("text", [MRV_A, MRV_B])
@pytest.mark.parametrize(("col", "what"), CHECKS)
def test_each_check_digit_is_checked(text: str, col: int, what: str) -> None:
    good = text.split("\n")[1][col]
    for digit in "0123456789<":
        if digit != good:
            assert what in _refused(_with(text, 1, col, digit))


@pytest.mark.parametrize("text", [MRV_A, MRV_B])
@pytest.mark.parametrize(("col", "ch"), [(0, "M"), (3, "9"), (15, "1"), (23, "3")])
def test_a_misread_covered_field_is_refused(text: str, col: int, ch: str) -> None:
    # number (L→M, 8→9), birth date, expiry: each changes its field's check digit
    assert _with(text, 1, col, ch) != text
    _refused(_with(text, 1, col, ch))


def test_optional_data_has_no_check_digit_on_a_visa() -> None:
    # 9303-7: positions 29-44 (MRV-A) / 29-36 (MRV-B) are optional data, no digit covers
    # them; a change there changes nothing the holder is keyed by
    other = _with(MRV_A, 1, 28, "1234567890ABCDEF")
    doc, ref = _parse(other), _parse(MRV_A)
    assert (doc.number, doc.birth_date, doc.expiry) == (ref.number, ref.birth_date, ref.expiry)
    assert _parse(_with(MRV_B, 1, 28, "ABC12345")).number == "L8988901C"


def _fix(line2: str, col: int) -> str:
    """Line 2 with the check digit at ``col`` recomputed for the field before it."""
    start = {9: 0, 19: 13, 27: 21}[col]
    return line2[:col] + iddoc.check_digit(line2[start:col]) + line2[col + 1 :]


@pytest.mark.parametrize(
    ("field", "col", "value"),
    [("birth", 13, "400931"), ("birth", 13, "401307"), ("expiry", 21, "960230")],
)
def test_dates_that_do_not_exist_are_refused_even_with_matching_check_digits(
    field: str, col: int, value: str
) -> None:
    lines = MRV_A.split("\n")
    l2 = lines[1][:col] + value + lines[1][col + 6 :]
    l2 = _fix(l2, col + 6)
    detail = _refused(lines[0] + "\n" + l2)
    assert "date" in detail, field


@pytest.mark.parametrize(
    ("line", "col", "text"),
    [
        (0, 2, "XUT"),  # issuing state off the list
        (0, 2, "U1O"),
        (1, 10, "XUT"),  # nationality off the list
        (0, 1, "1"),  # second code character: a letter or the filler
        (1, 20, "Q"),  # sex
    ],
)
def test_lists_and_field_classes_are_checked(line: int, col: int, text: str) -> None:
    _refused(_with(MRV_A, line, col, text))


def test_document_codes_of_a_visa() -> None:
    assert icao_codes.document_code_ok("MRV-A", "V<")
    assert icao_codes.document_code_ok("MRV-B", "VA")  # the second: issuer's choice
    assert not icao_codes.document_code_ok("MRV-A", "P<")
    assert not icao_codes.document_code_ok("TD1", "IV")  # never V second on a TD1/TD2
    # a three-line zone starting with V is no format of 9303 (TD1 is A, C or I)
    td1 = "\n".join(
        (
            "V<UTOD231458907<<<<<<<<<<<<<<<",
            "7408122F1204159UTO<<<<<<<<<<<6",
            "ERIKSSON<<ANNA<MARIA<<<<<<<<<<",
        )
    )
    assert "document code" in _refused(td1)


def test_a_passport_failing_its_composite_is_not_read_as_a_visa() -> None:
    # A TD3 read with a wrong composite (or personal-number) digit passes every check an
    # MRV-A has: number, birth, expiry.  It must stay a refused passport, never an MRV-A.
    assert _parse(TD3).source == "TD3"
    for col, digit in ((43, "1"), (42, "5"), (30, "Z")):
        bad = _with(TD3, 1, col, digit)
        assert iddoc.mrz_format(bad.split("\n")) == "TD3"
        detail = _refused(bad)
        assert "composite" in detail or "personal number" in detail
    # the same line 2 under a visa's line 1 is a visa (what tells them apart is the code)
    as_visa = _with(_with(TD3, 1, 43, "1"), 0, 0, "V")
    assert _parse(as_visa).source == "MRV-A"


def test_a_visa_with_a_passport_code_is_refused() -> None:
    # an MRV-A line 2 under a P line 1 is a TD3 with no composite: refused
    passport = _with(MRV_A, 0, 0, "P")
    assert iddoc.mrz_format(passport.split("\n")) == "TD3"
    _refused(passport)


def test_routing_status_key_and_ocr_text() -> None:
    noisy = "VISA\n" + MRV_A.replace("\n", "\n  ") + "\nmore text"
    found = iddoc.find_mrz(noisy)
    assert found == MRV_A
    real = _with(MRV_A, 0, 2, "NLD")
    doc = iddoc.parse_symbol_text("MRZ", real, today=TODAY)
    assert doc.source == "MRV-A"
    # the status set keys a document by category V (9303-3: the first character)
    from sentinel.trust.statusset import normalize_document

    assert normalize_document(doc.doc_type, doc.issuing_country, doc.number).startswith(b"doc|V|")

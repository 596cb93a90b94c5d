"""The first MRZ line: document codes and issuing states against ICAO 9303's closed lists
(no check digit covers them), with Debian's iso-codes as the outside oracle."""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path

import pytest

from sentinel.credentials import icao_codes, iddoc
from sentinel.errors import CredentialError

TODAY = date(2024, 1, 1)
ISO_JSON = Path("/usr/share/iso-codes/json/iso_3166-1.json")
# ICAO 9303 specimens (parts 4 and 5) with the specimen state replaced by a real one
TD3 = "P<NLDERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL898902C36NLD7408122F1204159ZE184226B<<<<<10"
TD1 = (
    "I<NLDD231458907<<<<<<<<<<<<<<<\n7408122F1204159NLD<<<<<<<<<<<6\nERIKSSON<<ANNA<MARIA<<<<<<<<<<"
)


@pytest.mark.skipif(
    not ISO_JSON.exists() and not os.environ.get("CI"), reason="Debian iso-codes not installed"
)
def test_state_list_is_iso_3166_alpha3_as_debian_publishes_it() -> None:
    published = {c["alpha_3"] for c in json.loads(ISO_JSON.read_text())["3166-1"]}
    assert published == icao_codes.ISO_3166_ALPHA3


def _with(mrz: str, line: int, col: int, text: str) -> str:
    lines = mrz.split("\n")
    lines[line] = lines[line][:col] + text + lines[line][col + len(text) :]
    return "\n".join(lines)


@pytest.mark.parametrize(
    ("mrz", "line", "col", "text"),
    [
        (TD3, 0, 0, "LJ"),  # the misread of the issue: "LJ" is no document code
        (TD3, 0, 2, "XUT"),  # nor "XUT" an issuing state
        (TD3, 1, 10, "XUT"),  # nationality
        (TD3, 0, 0, "I<"),  # a TD3 zone is a passport's: P
        (TD1, 0, 0, "P<"),  # a TD1 card is A, C or I
        (TD1, 0, 0, "IV"),  # V is never the second character of a TD1/TD2 code
        (TD1, 0, 2, "DE<"),
        (TD1, 1, 15, "UTO"),  # the specimen state is not a real one
    ],
)
def test_line_one_outside_the_lists_is_refused(mrz: str, line: int, col: int, text: str) -> None:
    iddoc.parse_mrz(mrz, today=TODAY)  # the unaltered zone reads
    with pytest.raises(CredentialError, match="country code|document code"):
        iddoc.parse_mrz(_with(mrz, line, col, text), today=TODAY)


@pytest.mark.parametrize(("code", "state"), [("ID", "D<<"), ("AC", "XXA"), ("IR", "GBN")])
def test_codes_of_the_lists_are_read(code: str, state: str) -> None:
    doc = iddoc.parse_mrz(_with(_with(TD1, 0, 0, code), 0, 2, state), today=TODAY)
    assert (doc.doc_type, doc.issuing_country) == (code.rstrip("<"), state.rstrip("<"))


def test_every_one_letter_misread_of_the_state_lands_on_the_list_or_is_refused() -> None:
    """Each single-character change of the issuing state either gives a listed code or is
    refused; nothing outside 9303's list is ever accepted."""
    accepted = refused = 0
    austria = _with(TD3, 0, 2, "AUT")  # a code with listed neighbours (AUS is listed, AUX is not)
    for col in range(2, 5):
        for ch in sorted(iddoc.MRZ_CHARS - {austria[col]}):
            mrz = _with(austria, 0, col, ch)
            try:
                doc = iddoc.parse_mrz(mrz, today=TODAY)
            except CredentialError:
                refused += 1
                continue
            assert doc.issuing_country in icao_codes.STATES
            accepted += 1
    assert refused > accepted > 0

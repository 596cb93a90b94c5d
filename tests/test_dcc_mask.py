"""Review D7: masked names hide every name word, whatever the script."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from sentinel.authority import dcc_issue as di
from sentinel.credentials import dcc
from sentinel.credentials.trustlist import TrustList

DAY = timedelta(days=1)


def holder(fn: str, fnt: str, gn: str, gnt: str, dob: str = "1988-05-06") -> dict:
    return {"ver": "1.3.0", "nam": {"fn": fn, "fnt": fnt, "gn": gn, "gnt": gnt}, "dob": dob}


@pytest.mark.parametrize(
    ("nam", "shown", "hidden"),
    [
        (("王", "WANG", "芳", "FANG"), "W*** F***, 1988", ["王", "芳", "WANG", "FANG"]),
        (("欧阳", "OUYANG", "娜娜", "NANA"), "O***** N***, 1988", ["欧", "阳", "娜"]),
        (("김", "KIM", "민준", "MINJUN"), "K** M*****, 1988", ["김", "민", "준"]),
        (("Иванов", "IVANOV", "Ян", "IAN"), "И***** **, 1988", ["Ян", "Иванов"]),
        (("الاسم الاخير", "ALASM<ALAXKHYR", "علي", "ALI"), "ا**** ا***** ع**, 1988", ["علي"]),
        (("Li", "LI", "Wei", "WEI"), "** W**, 1988", ["Li", "Wei"]),
        (("Musterfrau", "MUSTERFRAU", "Erika", "ERIKA"), "M********* E****, 1988", ["Erika"]),
        # a printed name mixing ideographs and Latin (Hong Kong style): the transliteration
        (("陳", "CHAN", "大文 David", "TAI<MAN<DAVID"), "C*** T** M** D****, 1988", ["大", "文"]),
    ],
)
def test_masked_display_hides_each_word(
    nam: tuple[str, str, str, str], shown: str, hidden: list[str]
) -> None:
    got = dcc.masked_display(holder(*nam))
    assert got == shown
    for word in hidden:
        assert word not in got


@pytest.mark.parametrize(
    ("nam", "shown"),
    [
        (("やまだ", "YAMADA", "はなこ", "HANAKO"), "Y***** H*****, 1988"),  # hiragana
        (("ヤマダ", "YAMADA", "ハナコ", "HANAKO"), "Y***** H*****, 1988"),  # katakana
        (("ㄌㄧˊ", "LI", "ㄇㄧㄥˊ", "MING"), "** M***, 1988"),  # bopomofo
        (("ꆈꌠ", "NUOSU", "ꀉꂿ", "AMO"), "N**** A**, 1988"),  # Yi syllables
    ],
)
def test_names_in_every_syllabic_script_are_masked_from_their_transliteration(
    nam: tuple[str, str, str, str], shown: str
) -> None:
    """A name written in syllables (Unicode's HIRAGANA, KATAKANA, BOPOMOFO and YI blocks,
    as CJK and HANGUL above): a syllable is a name part, so its transliteration is masked,
    never the first syllables shown."""
    got = dcc.masked_display(holder(*nam))
    assert got == shown
    assert not any(c in got for c in nam[0] + nam[2])


def test_a_holder_without_a_given_name_has_no_gap_in_the_masked_name() -> None:
    assert dcc.masked_display(holder("Musterfrau", "MUSTERFRAU", "", "")) == "M*********, 1988"


def test_one_character_words_never_shown_even_without_transliteration() -> None:
    got = dcc.masked_display({"nam": {"fn": "王", "gn": "芳"}, "dob": "1988"})
    assert "王" not in got and "芳" not in got and got == "* *, 1988"


def test_chinese_name_through_the_chain(
    signer: di.IssuerKey, trust: TrustList, now: datetime
) -> None:
    """The review's reproduction: fn=王 gn=芳 reached kiosk, SSE and journal in full."""
    text = di.issue(
        di.vaccination(),
        signer,
        issued_at=now - DAY,
        expires_at=now + DAY,
        holder=holder("王", "WANG", "芳", "FANG"),
    )
    cred = dcc.verify(text, trust, now)
    assert cred.display_name == "W*** F***, 1988"
    assert "王" not in cred.display_name and "芳" not in cred.display_name


def test_holder_pseudonym_tells_holders_apart_and_keeps_one_holder_the_same() -> None:
    """The 2G+ companion check and repeat-refusal counting compare these: a constant (or
    None for everyone) would let two people's certificates pass as one holder's."""
    key = b"k" * 32
    a = dcc.holder_pseudonym(holder("王", "WANG", "芳", "FANG"), key)
    again = dcc.holder_pseudonym(holder("王", "WANG", "芳", "FANG"), key)
    other = dcc.holder_pseudonym(holder("王", "WANG", "芳", "FANG", dob="1988-05-07"), key)
    other_name = dcc.holder_pseudonym(holder("李", "LI", "芳", "FANG"), key)
    assert isinstance(a, str) and len(a) >= 16
    assert a == again and len({a, other, other_name}) == 3
    assert dcc.holder_pseudonym(holder("王", "WANG", "芳", "FANG"), b"j" * 32) != a

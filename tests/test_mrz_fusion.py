"""MRZ reading beyond one upright still: 90°/180° documents, ICAO line-1 checks on what
the camera reads, and per-character voting across frames (issue 15)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from sentinel.credentials import iddoc
from sentinel.scan import synth
from sentinel.scan.fusion import MrzVotes
from sentinel.scan.mrz import IdReader

TD3 = "P<NLDERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL898902C36NLD7408122F1204159ZE184226B<<<<<10"


def _flip(text: str, line: int, col: int, ch: str) -> str:
    lines = text.split("\n")
    lines[line] = lines[line][:col] + ch + lines[line][col + 1 :]
    return "\n".join(lines)


def test_votes_fuse_frames_that_each_misread_one_character() -> None:
    frames = [_flip(TD3, 1, 2, "B"), _flip(TD3, 1, 15, "3"), _flip(TD3, 1, 22, "Z")]
    for f in frames:
        with pytest.raises(Exception):  # noqa: B017 - each frame alone fails its checks
            iddoc.parse_mrz(f)
    votes = MrzVotes()
    results = [votes.add(f, 0.8) for f in frames]
    assert results[0] is None  # one frame never decides through fusion
    assert TD3 in results[1:]
    assert all(r in (None, TD3) for r in results)


def test_votes_of_two_different_documents_do_not_invent_a_third() -> None:
    rng = np.random.default_rng(5)
    a, b = synth.make_mrz("TD3", rng), synth.make_mrz("TD3", rng)
    votes = MrzVotes()
    out = [votes.add(t, 0.7) for t in (a, b, a, b, b)]
    assert all(o in (None, a, b) for o in out)


def test_votes_are_forgotten_when_the_document_goes() -> None:
    votes = MrzVotes(forget_after=2)
    votes.add(_flip(TD3, 1, 2, "B"), 0.8)
    for _ in range(3):
        votes.idle()
    # the stale vote is gone: one new frame is again only one frame
    assert votes.add(_flip(TD3, 1, 15, "3"), 0.8) is None


@pytest.mark.parametrize(
    "rotation", [cv2.ROTATE_180, cv2.ROTATE_90_CLOCKWISE, cv2.ROTATE_90_COUNTERCLOCKWISE]
)
def test_reads_a_card_held_sideways_or_upside_down(rotation: int) -> None:
    rng = np.random.default_rng(21)
    text = synth.make_mrz("TD3", rng)
    card = cv2.rotate(synth.render_id_card(text, seed=2), rotation)
    frame = synth.place_image(card, 1280, 720, synth.Degrade(angle_deg=4, noise=3, fill=0.9))
    (sym,) = IdReader(fuse=False).read(frame)
    got, want = iddoc.parse_mrz(sym.text), iddoc.parse_mrz(text)
    # what check digits and ICAO lists cover (names have no check digit: see note)
    assert (got.number, got.issuing_country, got.birth_date, got.expiry) == (
        want.number,
        want.issuing_country,
        want.birth_date,
        want.expiry,
    )


def test_a_read_with_an_impossible_issuing_state_is_not_returned() -> None:
    rng = np.random.default_rng(8)
    lines = synth.make_mrz("TD3", rng).split("\n")
    lines[0] = lines[0][:2] + "XUT" + lines[0][5:]  # no check digit covers line 1
    card = synth.render_id_card("\n".join(lines), seed=3)
    frame = synth.place_image(card, 1280, 720, synth.Degrade(angle_deg=3, fill=0.8))
    assert IdReader(fuse=False).read(frame) == []
    good = synth.render_id_card(lines[0][:2] + "NLD" + lines[0][5:] + "\n" + lines[1], seed=3)
    assert IdReader(fuse=False).read(synth.place_image(good, 1280, 720, synth.Degrade(fill=0.8)))


def test_a_close_check_digit_blind_rival_keeps_a_read_from_one_frame() -> None:
    """S (28) and 8 differ by 20: the 7-3-1 check digits cannot tell them apart, so a cell
    whose runner-up is such a rival is ambiguous; an unrelated runner-up is not."""
    from sentinel.scan.mrz import _WHITELIST, decide_cells

    def cell(winner: str, rival: str, p_rival: float) -> np.ndarray:
        p = np.full(len(_WHITELIST), 0.001)
        p[_WHITELIST.index(winner)] = 0.8
        p[_WHITELIST.index(rival)] = p_rival
        return p

    assert decide_cells(np.stack([cell("8", "S", 0.3)]), "N")[2] is True
    assert decide_cells(np.stack([cell("8", "B", 0.3)]), "N")[2] is False  # the digit sees it
    assert decide_cells(np.stack([cell("8", "S", 0.01)]), "N")[2] is False
    # a digits-only field has no blind rival at all (digits differ by less than ten)
    assert decide_cells(np.stack([cell("8", "S", 0.3)]), "D") == ("8", pytest.approx(0.8), False)


def _one_frame(runner_up: dict[int, str]) -> list:
    """What the reader accepts from one frame of the specimen whose line-2 cells have these
    close runners-up (each a check-digit-blind rival of the cell's winner)."""
    from sentinel.scan.mrz import _LAYOUTS, TextLine, _joined

    layout = _LAYOUTS[2][0]
    line1, line2 = TD3.split("\n")
    alts2 = [runner_up.get(k, "") for k in range(len(line2))]
    reads = [(line1, 0.8, False, [""] * len(line1)), (line2, 0.8, True, alts2)]
    block = TextLine((300.0, 300.0), (600.0, 60.0), 0.0)
    return IdReader(fuse=False)._verified([_joined(reads, layout)], block)


def test_a_blind_rival_refuses_a_read_only_when_it_makes_another_document() -> None:
    """A blind rival is in the cell's runners-up and the rival search tries it: "8" with
    "S" close makes L S989... which passes every check (refused); "0" with "<" close makes
    a filler inside the number, which no document has (the read stands)."""
    line2 = TD3.split("\n")[1]
    assert (line2[1], line2[5]) == ("8", "0")
    assert _one_frame({1: "S"}) == []
    (sym,) = _one_frame({5: "<"})
    assert sym.text == TD3
    assert _one_frame({5: "<", 1: "S"}) == []


def test_a_close_blind_rival_is_a_runner_up_even_past_the_first_two() -> None:
    from sentinel.scan.mrz import _WHITELIST, decide_cells_alts

    p = np.full(len(_WHITELIST), 0.001)
    for ch, v in (("8", 0.8), ("B", 0.5), ("3", 0.4), ("S", 0.3)):
        p[_WHITELIST.index(ch)] = v
    assert decide_cells_alts(np.stack([p]), "N")[3] == ["B3S"]  # S: the digits miss it
    assert decide_cells_alts(np.stack([p]), "D")[3] == ["3"]  # digits only: no S at all


def test_votes_split_between_blind_rivals_decide_nothing() -> None:
    s_read = _flip(TD3, 1, 1, "S")  # "L8989..." read as "LS989...": the same check digits
    assert iddoc.parse_mrz(s_read).number != iddoc.parse_mrz(TD3).number  # both pass!
    votes = MrzVotes()
    assert votes.add(TD3, 0.8) is None
    assert votes.add(s_read, 0.7) is None  # split 8/S: no decision
    assert votes.add(TD3, 0.8) is None  # 1.6 vs 0.7: still too close
    votes.add(TD3, 0.8)
    assert votes.add(TD3, 0.8) == TD3  # 3.2 vs 0.7: settled


def test_the_shipped_classifier_reads_a_card() -> None:
    from sentinel.scan.ocrb_net import MODEL

    assert MODEL.is_file() and MODEL.stat().st_size > 100_000  # shipped in the package
    rng = np.random.default_rng(31)
    text = synth.make_mrz("TD3", rng)
    frame = synth.place_image(
        synth.render_id_card(text, seed=4), 1280, 720, synth.Degrade(fill=0.8)
    )
    (sym,) = IdReader("cnn", fuse=False).read(frame)
    assert iddoc.parse_mrz(sym.text).number == iddoc.parse_mrz(text).number


def test_leftover_votes_do_not_decide_while_another_document_is_in_view() -> None:
    rng = np.random.default_rng(6)
    a, b = synth.make_mrz("TD3", rng), synth.make_mrz("TD3", rng)
    votes = MrzVotes()
    for wrong_char in ("B", "3"):  # A's frames, each failing one check
        assert votes.add(_flip(a, 1, 2 if wrong_char == "B" else 15, wrong_char), 0.8) is None
    votes.add(a, 0.3)  # enough for A's zone to win every position
    # B comes into view (a misread frame of it): A's fused zone must not be returned now
    assert votes.add(_flip(b, 1, 2, "B"), 0.3) in (None, b)


@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (5, 500), (500, 5), (16, 2000), (480, 640)])
def test_odd_frames_give_nothing_not_a_crash(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    stripes = ((np.indices(shape)[1] // 3) % 2 * 255).astype(np.uint8)
    for frame in (np.zeros(shape, np.uint8), rng.integers(0, 255, shape, np.uint8), stripes):
        assert IdReader("template").read(frame) == []

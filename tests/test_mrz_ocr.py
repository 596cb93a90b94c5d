"""MRZ and identity-number OCR from rendered, degraded camera frames (fixed seeds)."""

from __future__ import annotations

import numpy as np
import pytest

from sentinel.credentials import iddoc
from sentinel.scan import synth
from sentinel.scan.decoders import Scanner
from sentinel.scan.mrz import IdReader, TemplateOCR, find_text_lines, split_lines


@pytest.fixture(scope="module")
def reader() -> IdReader:
    return IdReader("template")


def _frame(text: str, seed: int, d: synth.Degrade) -> np.ndarray:
    return synth.place_image(synth.render_id_card(text, seed=seed), 1280, 720, d, seed=seed)


@pytest.mark.parametrize(
    ("kind", "seed"), [("TD1", 1), ("TD2", 2), ("TD3", 3), ("CN", 4), ("TD3", 5)]
)
def test_reads_a_tilted_card(reader: IdReader, kind: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    text = synth.make_cn_id(rng) if kind == "CN" else synth.make_mrz(kind, rng)
    d = synth.Degrade(angle_deg=float(rng.uniform(-8, 8)), noise=3, jpeg_quality=80, fill=0.8)
    found = reader.read(_frame(text, seed, d))
    assert len(found) == 1
    sym = found[0]
    assert sym.kind == ("ID_NUMBER" if kind == "CN" else "MRZ")
    want = iddoc.parse_symbol_text(sym.kind, text)
    assert iddoc.parse_symbol_text(sym.kind, sym.text).number == want.number


def test_a_wrong_check_digit_on_the_card_gives_nothing(reader: IdReader) -> None:
    rng = np.random.default_rng(9)
    lines = synth.make_mrz("TD3", rng).split("\n")
    bad_digit = str((int(lines[1][9]) + 1) % 10)
    lines[1] = lines[1][:9] + bad_digit + lines[1][10:]  # a forged or damaged number
    assert reader.read(_frame("\n".join(lines), 9, synth.Degrade(fill=0.8))) == []


def test_no_text_no_work(reader: IdReader) -> None:
    empty = synth.blank_frame(1280, 720, seed=2)
    assert find_text_lines(empty[..., 0]) == []
    assert reader.read(empty) == []


def test_template_ocr_respects_field_classes() -> None:
    ocr = TemplateOCR()
    card = synth.render_id_card("11010519491231002X", seed=1)
    h = card.shape[0]
    (strip,) = split_lines(card[h - 112 : h - 50, 250:])  # the number line, no label
    text, score, _ = ocr.read_line(ocr.prepare(strip), "D" * 17 + "X")
    assert text == "11010519491231002X" and score > 0.8


def test_scanner_reads_an_id_card_after_finding_no_barcode() -> None:
    rng = np.random.default_rng(12)
    text = synth.make_mrz("TD1", rng)
    frame = _frame(text, 12, synth.Degrade(angle_deg=5, fill=0.8))
    scanner = Scanner("zxing", None, id_reader=IdReader(), id_every_frames=3)
    assert scanner.scan(frame) == []  # moving: not every frame pays for OCR
    found = scanner.scan(frame)  # the card came to rest: read now
    assert [s.kind for s in found] == ["MRZ"]
    assert scanner.scan(frame) == found  # held still: repeated, not read again
    assert scanner.decoded == 1


@pytest.mark.parametrize(
    ("fmt", "worn", "seed"), [("TD1", "J", 11), ("TD3", "R", 12), ("TD2", "G", 13)]
)
def test_a_worn_first_letter_is_read_among_the_codes_icao_allows(
    fmt: str, worn: str, seed: int
) -> None:
    """The document code's first letter is closed per format (ICAO 9303-4/5/6 §4.2.2:
    P on a passport, A, C or I on a card, V on a visa): an `I` worn into a `J`, a `P`
    into an `R`, used to fail the code check and lose the whole read."""
    rng = np.random.default_rng(seed)
    text = synth.make_mrz(fmt, rng)
    first = {"TD1": "I", "TD3": "P", "TD2": "C"}[fmt]
    text = first + "<" + text[2:]
    frame = _frame(worn + text[1:], seed, synth.Degrade(angle_deg=2.0, fill=0.8))
    found = IdReader("template", fuse=False).read(frame)
    assert len(found) == 1
    # the lines check digits cover (a name line has none: a slip there is no other holder)
    assert found[0].text.split("\n")[:2] == text.split("\n")[:2]
    assert iddoc.parse_mrz(found[0].text).doc_type == first

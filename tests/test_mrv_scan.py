"""Visas through the real scanner: rendered MRV-A / MRV-B cards read by the template OCR,
and a rendered passport whose composite digit is wrong never read (as a visa or at all),
one frame or fused over several."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sentinel.credentials import iddoc
from sentinel.scan import synth
from sentinel.scan.mrz import IdReader

pytestmark = pytest.mark.skipif(not Path(synth.OCRB_FONT).exists(), reason="no OCR-B font")


def _frame(text: str, seed: int, angle: float = 3.0) -> np.ndarray:
    card = synth.render_id_card(text, seed=seed)
    return synth.place_image(card, 1280, 720, synth.Degrade(angle_deg=angle, fill=0.8), seed=seed)


@pytest.mark.parametrize(("fmt", "seed"), [("MRV-A", 1), ("MRV-A", 2), ("MRV-B", 3), ("MRV-B", 4)])
def test_rendered_visas_are_read(fmt: str, seed: int) -> None:
    text = synth.make_mrz(fmt, np.random.default_rng(seed))
    assert text.startswith("V") and iddoc.mrz_format(text.split("\n")) == fmt
    (sym,) = IdReader(fuse=False).read(_frame(text, seed))
    doc, truth = iddoc.parse_mrz(sym.text), iddoc.parse_mrz(text)
    assert doc.source == fmt
    assert (doc.issuing_country, doc.number, doc.birth_date, doc.expiry) == (
        truth.issuing_country,
        truth.number,
        truth.birth_date,
        truth.expiry,
    )


def _wrong_composite(text: str) -> str:
    l1, l2 = text.split("\n")
    bad = str((int(l2[43]) + 5) % 10)
    return l1 + "\n" + l2[:43] + bad


@pytest.mark.parametrize("seed", [1, 2])
def test_a_passport_with_a_wrong_composite_is_never_read(seed: int) -> None:
    text = synth.make_mrz("TD3", np.random.default_rng(seed))
    # the control: the right zone on the same card is read, as a passport
    (sym,) = IdReader(fuse=False).read(_frame(text, seed))
    assert iddoc.parse_mrz(sym.text).source == "TD3"
    bad = _wrong_composite(text)
    # every check an MRV-A has still passes on that line 2: only the code tells them apart
    as_visa = iddoc.parse_mrz("V" + bad[1:])
    assert as_visa.number == iddoc.parse_mrz(text).number
    assert IdReader(fuse=False).read(_frame(bad, seed)) == []
    fused = IdReader(fuse=True)
    for k in range(4):  # votes across frames cannot make it a visa either
        assert fused.read(_frame(bad, seed, angle=2.0 + k)) == []

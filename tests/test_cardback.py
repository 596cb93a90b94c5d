"""A resident identity card shown back side up: recognised on rendered frames (another
font than the detector's templates), never on fronts, other documents or empty scenes;
run by the scanner only when the ID reader read nothing but saw print; a hint through
the pipeline to its hint listeners, never a decision or a journal row."""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory

from sentinel.cli import main
from sentinel.config import Config, ScanConfig, replace
from sentinel.credentials.trustlist import TrustList
from sentinel.gate import Gate
from sentinel.journal import Journal
from sentinel.pipeline import HINT_REPEAT_S, Pipeline
from sentinel.scan import Scanner, synth
from sentinel.scan.cardback import CARD_BACK, CardBackDetector, is_back
from sentinel.scan.mrz import IdReader
from sentinel.trust import StaticTrust
from sentinel.web.cues import HINTS
from sentinel.web.hub import EventHub

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import corpus_scan  # noqa: E402

pytestmark = pytest.mark.skipif(
    not Path(synth.CJK_FONT).exists() and not os.environ.get("CI"),
    reason="no CJK font to render cards with (Debian fonts-wqy-microhei)",
)
NUMBER = "11010519491231002X"


@pytest.fixture(scope="module")
def detector() -> CardBackDetector:
    return CardBackDetector()


def _back(seed: int, angle: float = 4.0, rotate: int | None = None, **kw: float) -> np.ndarray:
    card = synth.render_cn_back(seed)
    if rotate is not None:
        card = cv2.rotate(card, rotate)
    return synth.place_image(card, 1280, 720, synth.Degrade(angle_deg=angle, **kw), seed=seed)


@pytest.mark.parametrize(
    ("seed", "rotate", "kw"),
    [
        (1, None, {"fill": 0.8}),
        (2, cv2.ROTATE_180, {"fill": 0.75}),
        (3, None, {"fill": 0.6, "noise": 6.0, "jpeg_quality": 60}),
        (4, None, {"fill": 0.8, "blur_px": 1.0, "brightness": 0.5}),
    ],
)
def test_rendered_card_backs_are_recognised(
    detector: CardBackDetector, seed: int, rotate: int | None, kw: dict
) -> None:
    frame = _back(seed, rotate=rotate, **kw)
    scores = detector.scores(frame)
    assert is_back(scores), scores
    assert detector.detect(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)) == CARD_BACK


def test_fronts_other_documents_and_empty_scenes_are_not_backs(
    detector: CardBackDetector,
) -> None:
    rng = np.random.default_rng(3)
    frames = [
        # the front: its 公民身份号码 shares 民身份 with the title
        synth.place_image(synth.render_cn_front(NUMBER, 1), 1280, 720, synth.Degrade(fill=0.8)),
        corpus_scan.photograph(corpus_scan.front_document(NUMBER, rng, 2), rng, angle=3.0),
        synth.place_image(
            synth.render_id_card(synth.make_mrz("TD1", rng), 1), 1280, 720, synth.Degrade(fill=0.8)
        ),
        synth.place_image(synth.render_id_card(NUMBER, 2), 1280, 720, synth.Degrade(fill=0.8)),
        synth.blank_frame(640, 480, 1),
        cv2.cvtColor(corpus_scan.photo_background(1280, 720, rng).astype(np.uint8), 8),
    ]
    for i, frame in enumerate(frames):
        assert detector.detect(frame) is None, (i, detector.scores(frame))


def test_the_glyphs_ship_with_the_package_and_a_damaged_file_is_refused(tmp_path: Path) -> None:
    np.savez(tmp_path / "g.npz", regular_5c45=np.zeros((3, 3), np.uint8))
    with pytest.raises(ValueError, match="glyph"):
        CardBackDetector(tmp_path / "g.npz")


class _Counting:
    """The real detector, counting its calls."""

    def __init__(self) -> None:
        self.inner, self.calls = CardBackDetector(), 0

    def detect(self, gray: np.ndarray) -> str | None:
        self.calls += 1
        return self.inner.detect(gray)


def test_the_scanner_hints_only_when_no_number_is_read() -> None:
    scanner = Scanner("zxing", None, id_reader=IdReader(), id_every_frames=1)
    counting = _Counting()
    scanner.back_detector = counting
    # an empty moving scene: the ID reader sees no print, the detector never runs
    for i in range(4):
        assert scanner.scan(synth.blank_frame(640, 480, i)) == []
        assert scanner.hint is None
    assert counting.calls == 0
    # the back: no symbol, a hint
    assert scanner.scan(_back(5, fill=0.8)) == []
    assert scanner.hint == CARD_BACK and counting.calls == 1
    # the front, read: a symbol and no hint, the detector not run
    front = synth.place_image(synth.render_id_card(NUMBER, 3), 1280, 720, synth.Degrade(fill=0.8))
    (sym,) = scanner.scan(front)
    assert sym.kind == "ID_NUMBER" and scanner.hint is None and counting.calls == 1


def test_a_card_wrong_side_up_is_looked_at_every_third_failed_read() -> None:
    # a front sliding into view fails to read on several frames in a row: the detector
    # (tens of ms) must not delay each next read attempt
    scanner = Scanner("zxing", None, id_reader=IdReader(fuse=False), id_every_frames=1)
    counting = _Counting()
    scanner.back_detector = counting
    hints = []
    for k in range(7):
        scanner.scan(_back(7, angle=2.0 + k, fill=0.8))
        hints.append(scanner.hint)
    assert counting.calls == 3  # frames 1, 4 and 7
    assert hints == [CARD_BACK, None, None, CARD_BACK, None, None, CARD_BACK]


def test_a_hint_reaches_the_listeners_once_and_is_never_journaled(
    tmp_path: Path, trust: TrustList, now: datetime
) -> None:
    cfg = replace(Config(), data_dir=str(tmp_path), scan=ScanConfig(id_every_frames=1))
    gate = Gate(cfg.gate, pin_factory=MockFactory())
    journal = Journal(tmp_path / "j.db")
    pipe = Pipeline(cfg, StaticTrust(trust), gate, journal, pseudonym_key=b"k" * 32)
    hub = EventHub()
    published: list[tuple[str, dict]] = []
    hub.publish = lambda name, data: published.append((name, data))  # type: ignore[method-assign]
    heard: list[str] = []
    pipe.hint_listeners += [heard.append, hub.on_hint]
    frames = [_back(6, angle=a, fill=0.8) for a in (3.0, 4.0, 5.0)]
    with gate, journal:
        for k, frame in enumerate(frames):  # a card held up back side first, moving a little
            assert pipe.process_frame(frame, now, mono=0.1 * k) == []
        assert heard == [CARD_BACK]
        # still shown after HINT_REPEAT_S: said again
        pipe.process_frame(_back(6, angle=6.0, fill=0.8), now, mono=HINT_REPEAT_S + 0.5)
        assert heard == [CARD_BACK, CARD_BACK]
        assert journal.events() == [] and gate.pulses == 0
    zh, en = HINTS[CARD_BACK]
    assert published[0] == ("hint", {"hint": CARD_BACK, "zh": zh, "en": en})
    hub.on_hint("no_such_hint")
    assert len(published) == 2


def test_sentinel_scan_prints_the_hint_for_a_card_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cv2.imwrite(str(tmp_path / "a-back.png"), _back(8, fill=0.8))
    front = synth.place_image(synth.render_id_card(NUMBER, 3), 1280, 720, synth.Degrade(fill=0.8))
    cv2.imwrite(str(tmp_path / "b-front.png"), front)
    cv2.imwrite(str(tmp_path / "c-back.png"), _back(9, fill=0.75))  # each image looked at
    assert main(["scan", str(tmp_path)]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x.get("hint") for x in lines] == [CARD_BACK, None, CARD_BACK]
    assert lines[0]["symbols"] == [] and "id_document" in lines[1]

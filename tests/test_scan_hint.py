"""The "hold the code still" hint: a QR code the camera sees but cannot read for about a
second reaches the kiosk as a hint, in both languages, through the real pipeline; nothing
is journaled and the gate stays shut."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
from gpiozero.pins.mock import MockFactory

from sentinel.config import Config, replace
from sentinel.credentials.trustlist import TrustList
from sentinel.gate import Gate
from sentinel.journal import Journal
from sentinel.pipeline import Pipeline
from sentinel.scan import synth
from sentinel.scan.decoders import CODE_UNREADABLE, UNREAD_HINT_FRAMES
from sentinel.trust import StaticTrust
from sentinel.web.cues import HINTS
from sentinel.web.hub import EventHub

TEXT = "HC1:" + "6BFOXN%TS3DH0YOJ58S S-W5HDC *M0II5XHC9B5G2+$N" * 4


def _damaged(i: int) -> np.ndarray:
    code = synth.render_qr(TEXT, module_px=6).copy()
    h, w = code.shape
    code[int(h * 0.3) : int(h * 0.7), int(w * 0.3) : int(w * 0.7)] = 255
    return synth.place(code, 640, 480, synth.Degrade(angle_deg=2.0 + i), i)


def test_an_unreadable_code_held_up_gets_the_hint_once_and_nothing_is_journaled(
    tmp_path: Path, trust: TrustList, now: datetime
) -> None:
    cfg = replace(Config(), data_dir=str(tmp_path))
    gate = Gate(cfg.gate, pin_factory=MockFactory())
    journal = Journal(tmp_path / "j.db")
    pipe = Pipeline(cfg, StaticTrust(trust), gate, journal, pseudonym_key=b"k" * 32)
    hub = EventHub()
    published: list[tuple[str, dict]] = []
    hub.publish = lambda name, data: published.append((name, data))  # type: ignore[method-assign]
    heard: list[str] = []
    pipe.hint_listeners += [heard.append, hub.on_hint]
    with gate, journal:
        for k in range(UNREAD_HINT_FRAMES + 5):  # 10 fps, a hand that moves a little
            assert pipe.process_frame(_damaged(k), now, mono=0.1 * k) == []
            if k < UNREAD_HINT_FRAMES - 1:
                assert heard == []
        assert heard == [CODE_UNREADABLE]  # said once, not on every frame
        assert journal.events() == [] and gate.pulses == 0
    zh, en = HINTS[CODE_UNREADABLE]
    assert published == [("hint", {"hint": CODE_UNREADABLE, "zh": zh, "en": en})]
    assert zh and en and zh != en

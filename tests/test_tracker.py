"""Presentation tracker: one decision per presentation, not per frame."""

from __future__ import annotations

from sentinel.scan import PresentationTracker, Symbol

A = Symbol("QRCODE", "HC1:A", b"HC1:A")
B = Symbol("QRCODE", "HC1:B", b"HC1:B")


def _run(frames: list[list[Symbol]], fps: float = 15.0, **kw: float) -> list[str]:
    t = PresentationTracker(**kw)  # type: ignore[arg-type]
    out = []
    for i, syms in enumerate(frames):
        out += [s.text for s in t.update(syms, i / fps)]
    return out


def test_thirty_frames_of_one_code_are_one_presentation() -> None:
    assert _run([[A]] * 30, cooldown_s=60) == ["HC1:A"]


def test_a_dropped_frame_or_two_does_not_split_a_presentation() -> None:
    frames = [[A]] * 10 + [[]] * 2 + [[A]] * 10
    assert _run(frames, cooldown_s=60) == ["HC1:A"]


def test_two_separated_showings_are_two_presentations() -> None:
    frames = [[A]] * 10 + [[]] * 10 + [[A]] * 10
    assert _run(frames, cooldown_s=60) == ["HC1:A", "HC1:A"]


def test_cooldown_makes_a_code_held_long_a_new_presentation() -> None:
    assert _run([[A]] * 40, fps=10, cooldown_s=2.0) == ["HC1:A", "HC1:A"]


def test_two_codes_in_view_are_two_presentations() -> None:
    assert sorted(_run([[A, B]] * 5 + [[B]] * 5, cooldown_s=60)) == ["HC1:A", "HC1:B"]


def test_memory_stays_bounded() -> None:
    t = PresentationTracker(cooldown_s=1, absent_frames=3)
    for i in range(2000):
        t.update([Symbol("QRCODE", f"code-{i}", b"")], i / 15)
    assert len(t._last_seen) < 100


def test_two_reads_of_one_card_differing_in_a_name_are_one_presentation() -> None:
    """Names carry no check digit: the OCR may read ANNA on one frame and ANMA on the
    next.  By text those were two presentations (two decisions for one card)."""
    import numpy as np

    from sentinel.pipeline import presentation_key
    from sentinel.scan import synth

    mrz = synth.make_mrz("TD3", np.random.default_rng(1))
    assert "<<ANNA<" in mrz
    a = Symbol("MRZ", mrz, mrz.encode())
    b = Symbol("MRZ", mrz.replace("<<ANNA<", "<<ANMA<"), b"")
    other = synth.make_mrz("TD3", np.random.default_rng(2))
    c = Symbol("MRZ", other, other.encode())
    t = PresentationTracker(cooldown_s=60, key=presentation_key)
    started = []
    for i, syms in enumerate([[a], [b], [a], [b], [b], [c]]):
        started += t.update(syms, i / 10)
    assert [s.text for s in started] == [mrz, other]
    # unreadable ID text and QR codes are keyed by their text, as before
    assert presentation_key(A) == "HC1:A"
    assert presentation_key(Symbol("MRZ", "P<garbage", b"")) == "P<garbage"
    assert presentation_key(a) == presentation_key(b) != presentation_key(c)

"""Decoder back-ends and the Scanner on rendered camera frames (fixed seeds)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from sentinel.cli import main
from sentinel.scan import synth
from sentinel.scan.decoders import BACKENDS, Scanner
from sentinel.scan.motion import MotionGate
from sentinel.scan.symbol import Symbol

TEXT = "HC1:" + "6BFOXN%TS3DH0YOJ58S S-W5HDC *M0II5XHC9B5G2+$N" * 4  # DCC-sized text

# what each back-end is asked to read: zbar misses keystone and OpenCV strong blur
# (bench_scan.py measures the rest)
CASES = {
    "zxing": synth.Degrade(angle_deg=20, keystone=0.15, blur_px=0.7, noise=4, fill=0.6),
    "pyzbar": synth.Degrade(angle_deg=20, blur_px=0.7, noise=4, fill=0.6),
    "opencv": synth.Degrade(angle_deg=12, blur_px=0.5, noise=3, fill=0.65),
}


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_backend_reads_a_tilted_blurred_code(name: str) -> None:
    frame = synth.place(synth.render_qr(TEXT, 4), 1280, 720, CASES[name], seed=5)
    found = BACKENDS[name]().decode(frame)
    assert [s.text for s in found] == [TEXT]
    assert found[0].kind == "QRCODE" and found[0].raw_bytes == TEXT.encode()
    assert len(found[0].polygon) == 4


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_backend_finds_nothing_on_an_empty_frame(name: str) -> None:
    assert BACKENDS[name]().decode(synth.blank_frame(640, 480, seed=1)) == []


def test_scanner_reads_every_condition() -> None:
    rng = np.random.default_rng(21)
    scanner = Scanner("zxing", None)
    for i, cond in enumerate(synth.CONDITIONS):
        d = synth.degrade_for(cond, rng)
        frame = synth.place(synth.render_qr(TEXT, 4), 640, 480, d, seed=i)
        assert [s.text for s in scanner.decode(frame)] == [TEXT], cond


def test_retries_read_blur_that_defeats_the_primary_alone() -> None:
    rng = np.random.default_rng(5)
    long_text = "HC1:" + "6BFOXN%TS3DH0YOJ58S S-W5HDC *M0II5XHC9B5G2+$N" * 13  # a DCC's size
    code = synth.render_qr(long_text, 4)
    frames = [
        synth.place(code, 640, 480, synth.degrade_for("strong_blur", rng), seed=i)
        for i in range(12)
    ]
    alone = sum(bool(BACKENDS["zxing"]().decode(f)) for f in frames)
    with_retries = sum(bool(Scanner("zxing", None).decode(f)) for f in frames)
    assert with_retries > alone and with_retries >= 10


def test_motion_gate_skips_a_still_empty_scene_but_not_a_held_code() -> None:
    still = [synth.blank_frame(640, 480, seed=s) for s in range(6)]  # sensor noise only
    scanner = Scanner("zxing", None, recheck_frames=100)
    for f in still:
        assert scanner.scan(f) == []
    assert scanner.decoded == 1 and scanner.skipped == 5
    code = synth.place(synth.render_qr(TEXT, 4), 640, 480, synth.Degrade(fill=0.6), seed=1)
    held = [np.clip(code.astype(np.int16) + s, 0, 255).astype(np.uint8) for s in (0, 1, 0, 1)]
    results = [scanner.scan(f) for f in held]
    assert all([s.text for s in r] == [TEXT] for r in results)  # the held code repeats
    assert scanner.decoded == 2  # decoded once when it appeared


def test_motion_gate_rechecks_and_measures() -> None:
    gate = MotionGate(2.0, recheck_frames=3)
    f = synth.blank_frame(320, 240, seed=0)[..., 0]
    assert gate.changed(f)
    assert [gate.changed(f) for _ in range(3)] == [False, False, True]
    assert gate.changed(cv2.add(f, 50)) and gate.last_diff > 40


@pytest.mark.parametrize(("w", "h"), [(640, 480), (1280, 720), (1000, 701), (90, 50)])
def test_motion_gate_averages_square_blocks_of_whole_pixels(w: int, h: int) -> None:
    """The tiny copy is the mean of each ``w // 80``-pixel square block (numpy's own
    reshape-and-mean is the oracle), the partial blocks at the right and bottom edges
    left out; OpenCV's integer-ratio path rounds each mean to the nearest grey level."""
    from sentinel.scan.motion import tiny

    g = np.random.default_rng(w).integers(0, 256, (h, w), dtype=np.uint8)
    b = max(1, w // 80)
    rows, cols = h // b, w // b
    want = g[: rows * b, : cols * b].reshape(rows, b, cols, b).mean(axis=(1, 3))
    got = tiny(g)
    assert got.shape == (rows, cols)
    assert np.abs(got.astype(np.float64) - want).max() <= 0.5 + 1e-9


def test_motion_gate_takes_a_change_of_frame_size_as_motion() -> None:
    """A camera that changes resolution mid-stream (a reconnect at another mode): the new
    size counts as a change and becomes the reference, never a comparison of two sizes."""
    gate = MotionGate(2.0, recheck_frames=100)
    small = synth.blank_frame(640, 480, seed=0)[..., 0]
    large = synth.blank_frame(1280, 720, seed=0)[..., 0]
    assert gate.changed(small) and not gate.changed(small)
    assert gate.changed(large) and not gate.changed(large)
    assert gate.changed(small)


def test_scanner_roi_crops_before_decoding() -> None:
    frame = synth.place(synth.render_qr(TEXT, 4), 1280, 720, synth.Degrade(fill=0.6), seed=2)
    assert Scanner("zxing", None, roi=(0, 0, 200, 200)).scan(frame) == []
    (full,) = Scanner("zxing", None).scan(frame)
    (cropped,) = Scanner("zxing", None, roi=(100, 50, 1180, 670)).scan(frame)
    assert cropped.text == TEXT
    # polygons come back in frame pixels
    pairs = zip(full.polygon, cropped.polygon, strict=True)
    assert all(abs(a - b) <= 2 for p, q in pairs for a, b in zip(p, q, strict=True))


def test_scan_cli_prints_json_and_masks_numbers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(4)
    mrz = synth.make_mrz("TD3", rng)
    card = synth.place_image(synth.render_id_card(mrz, 1), 1280, 720, synth.Degrade(fill=0.8))
    cv2.imwrite(str(tmp_path / "a-qr.png"), synth.place(synth.render_qr("hello"), 640, 480))
    cv2.imwrite(str(tmp_path / "b-card.png"), card)
    cv2.imwrite(str(tmp_path / "c-empty.png"), synth.blank_frame(640, 480))
    assert main(["scan", str(tmp_path)]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [Path(x["file"]).name for x in lines] == ["a-qr.png", "b-card.png", "c-empty.png"]
    assert lines[0]["symbols"] == [{"kind": "QRCODE", "text": "hello"}]
    number = mrz.split("\n")[1][:9].rstrip("<")
    doc = lines[1]["id_document"]
    assert doc["type"] == "P" and doc["number"] != number and "*" in doc["number"]
    assert number not in json.dumps(lines)
    assert lines[2]["symbols"] == [] and lines[2]["ms"] >= 0
    assert main(["scan", "--show-number", str(tmp_path / "b-card.png")]) == 0
    assert json.loads(capsys.readouterr().out)["id_document"]["number"] == number
    assert main(["scan", str(tmp_path / "missing.png")]) == 1


def _corpus_scan():  # benchmarks/corpus_scan.py: the seeded hard corpus's renderers
    import importlib.util
    import sys

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "corpus_scan.py"
    spec = importlib.util.spec_from_file_location("corpus_scan", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("corpus_scan", mod)
    spec.loader.exec_module(mod)
    return mod


SMALL = "HC1:" + "6BFOXN%TS3DH0YOJ58S S-W5HDC *M0II5XHC9B5G2+$N" * 8


@pytest.mark.parametrize("seed", [24, 38])
def test_texture_pass_reads_a_code_too_small_for_zxing_to_see(seed: int) -> None:
    from sentinel.scan.decoders import ZxingDecoder

    cs = _corpus_scan()
    s = cs.qr_sample("small_in_frame", SMALL, np.random.default_rng(seed), (640, 480))
    g = cv2.cvtColor(s.frame, cv2.COLOR_BGR2GRAY)
    alone = ZxingDecoder()
    # zxing-cpp neither reads it nor reports a candidate: no crop retry would run
    assert alone.decode(g) == [] and not alone.saw_candidate
    without = Scanner("zxing", None, retry_steps=("crops", "unsharp", "upscale", "clahe"))
    assert without.decode(g) == []
    found = Scanner("zxing", None).decode(g)
    assert [x.text for x in found] == [SMALL]
    xs = [p[0] for p in found[0].polygon]
    ys = [p[1] for p in found[0].polygon]
    # the polygon is in frame pixels, around a code of ~70-110 px
    assert 0 <= min(xs) < max(xs) <= 640 and 0 <= min(ys) < max(ys) <= 480
    assert 40 < max(xs) - min(xs) < 160


@pytest.mark.parametrize("seed", [8, 38, 100])
def test_texture_pass_sharpens_a_defocused_code_zxing_no_longer_sees(seed: int) -> None:
    from sentinel.scan.qr_finder import crop_around, texture_candidates

    cs = _corpus_scan()
    s = cs.qr_sample("blur", SMALL, np.random.default_rng(seed), (640, 480))
    g = cv2.cvtColor(s.frame, cv2.COLOR_BGR2GRAY)
    scanner = Scanner("zxing", None)
    # the crop the texture pass takes, as is, does not read: only its sharpened copy does
    boxes = texture_candidates(g)
    assert boxes
    assert all(scanner.primary.decode(crop_around(g, b)[0]) == [] for b in boxes)
    assert [x.text for x in scanner.decode(g)] == [SMALL]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_deblur_reads_a_defocused_code_no_sharpening_recovers(seed: int) -> None:
    """A DCC-sized code at 2.4 px per module under a 1.4 px defocus: zxing-cpp sees no
    finder pattern, the texture pass's crops (as is and sharpened) do not read; the
    Wiener-deconvolved crop does, and its polygon is in frame pixels."""
    code = synth.render_qr(SMALL, module_px=4)
    d = synth.Degrade(angle_deg=8.0, blur_px=1.4, noise=3.0, fill=code.shape[0] / 4 * 2.4 / 480)
    g = cv2.cvtColor(synth.place(code, 640, 480, d, seed), cv2.COLOR_BGR2GRAY)
    steps = ("crops", "unsharp", "upscale", "clahe", "texture")
    assert Scanner("zxing", None, retry_steps=steps).decode(g) == []
    found = Scanner("zxing", None).decode(g)
    assert [x.text for x in found] == [SMALL]
    xs = [p[0] for p in found[0].polygon]
    assert 0 <= min(xs) < max(xs) <= 640 and 150 < max(xs) - min(xs) < 330


def test_wiener_undoes_a_gaussian_blur_it_is_told_of() -> None:
    from sentinel.scan.deblur import wiener

    rng = np.random.default_rng(3)
    sharp = (rng.integers(0, 2, (40, 40)) * 255).astype(np.uint8)
    sharp = cv2.resize(sharp, None, fx=3, fy=3, interpolation=cv2.INTER_NEAREST)
    blurred = cv2.GaussianBlur(sharp, (0, 0), 1.4)
    restored = wiener(blurred, 1.4, 0.002)
    assert restored.shape == sharp.shape and restored.dtype == np.uint8
    err_blurred = np.abs(blurred.astype(int) - sharp).mean()
    err_restored = np.abs(restored.astype(int) - sharp).mean()
    assert err_restored < 0.5 * err_blurred
    # degenerate input comes back unchanged, never an exception
    tiny = np.zeros((4, 4), np.uint8)
    assert wiener(tiny, 1.4) is tiny and wiener(sharp, 0.0) is sharp


def _damaged_code() -> np.ndarray:
    """A code whose finder patterns are whole but whose middle is gone (beyond any error
    correction): zxing-cpp sees it and cannot read it."""
    code = synth.render_qr(TEXT, module_px=6).copy()
    h, w = code.shape
    code[int(h * 0.3) : int(h * 0.7), int(w * 0.3) : int(w * 0.7)] = 255
    return code


def test_a_code_seen_but_unreadable_for_a_second_asks_to_hold_it_still() -> None:
    from sentinel.scan.decoders import CODE_UNREADABLE, UNREAD_HINT_FRAMES

    sc = Scanner("zxing", None)
    hints = []
    for i in range(UNREAD_HINT_FRAMES + 3):  # a hand that moves: every frame is decoded
        frame = synth.place(_damaged_code(), 640, 480, synth.Degrade(angle_deg=3 + i), i)
        assert sc.scan(frame) == []
        assert sc.saw_code
        hints.append(sc.hint)
    assert hints[: UNREAD_HINT_FRAMES - 1] == [None] * (UNREAD_HINT_FRAMES - 1)
    assert hints[UNREAD_HINT_FRAMES - 1 :] == [CODE_UNREADABLE] * 4
    # the code read at last: no hint, and the count starts again
    good = synth.place(synth.render_qr(TEXT, module_px=6), 640, 480, synth.Degrade(angle_deg=5), 99)
    assert [x.text for x in sc.scan(good)] == [TEXT] and sc.hint is None
    bad = synth.place(_damaged_code(), 640, 480, synth.Degrade(angle_deg=9), 100)
    assert sc.scan(bad) == [] and sc.hint is None


def test_an_empty_scene_never_asks_for_a_code() -> None:
    from sentinel.scan.decoders import UNREAD_HINT_FRAMES

    sc = Scanner("zxing", None)
    for i in range(UNREAD_HINT_FRAMES + 3):
        frame = synth.blank_frame(640, 480, i)
        sc.scan(frame)
        assert sc.hint is None


def test_texture_candidates_skip_empty_scenes_and_lines_of_text() -> None:
    from sentinel.scan.qr_finder import texture_candidates

    for seed in range(5):
        g = cv2.cvtColor(synth.blank_frame(1280, 720, seed=seed), cv2.COLOR_BGR2GRAY)
        assert texture_candidates(g) == []
    g = cv2.cvtColor(synth.blank_frame(640, 480, seed=1), cv2.COLOR_BGR2GRAY)
    cv2.putText(g, "P<UTOERIKSSON<<ANNA<MARIA<<<<", (10, 240), cv2.FONT_HERSHEY_SIMPLEX, 0.9, 0, 2)
    assert texture_candidates(g) == []  # elongated texture: a line of text, not a code
    code = synth.render_qr(SMALL, 2)
    g[20 : 20 + code.shape[0], 300 : 300 + code.shape[1]] = code
    boxes = texture_candidates(g)
    assert len(boxes) == 1
    x, y, w, h = boxes[0]
    assert abs(x - 300) < 24 and abs(y - 20) < 24 and abs(w - code.shape[1]) < 48


class _CountingIdReader:
    def __init__(self) -> None:
        self.calls = 0

    def read(self, _frame: np.ndarray) -> list:
        self.calls += 1
        return []


def test_no_ocr_while_a_qr_code_is_in_view_but_not_yet_read() -> None:
    code = synth.render_qr("HC1:" + "X" * 300, 4).copy()
    h, w = code.shape
    code[int(h * 0.35) : int(h * 0.65), int(w * 0.3) : int(w * 0.7)] = 0  # unreadable
    seen = synth.place(code, 640, 480, synth.Degrade(fill=0.7), seed=1)
    empty = synth.blank_frame(640, 480, seed=2)
    reader = _CountingIdReader()
    sc = Scanner("zxing", None, id_reader=reader, id_every_frames=1)
    assert sc.scan(seen) == [] and sc.saw_code  # zxing-cpp saw finder patterns
    assert reader.calls == 0  # no 100+ ms of OCR on a frame with a phone in it
    assert sc.scan(empty) == [] and not sc.saw_code
    assert reader.calls == 1  # an ordinary frame without a code is searched for IDs


QR_A = "HC1:" + "6BFOXN%TS3DH0YOJ58S S-W5HDC *M0II5XHC9B5G2+$N" * 6
QR_B = "HC1:" + "Q7LM2ZZ%TS3DH0YOJ58S S-W5HDC *M0II5XHC9B5G2+$N" * 6


@pytest.mark.parametrize("seed", [0, 3])
def test_a_second_code_zxing_saw_but_could_not_read_is_read_beside_the_first(seed: int) -> None:
    """Two codes in view, one sharp and one small and soft: before, the first read ended
    the decode and the second (which the retries read when alone) was never tried."""
    from sentinel.scan.decoders import ZxingDecoder

    rng = np.random.default_rng(seed)
    g = cv2.cvtColor(synth.blank_frame(1280, 720, seed=seed), cv2.COLOR_BGR2GRAY)
    frame = g.astype(np.float32)
    a = synth.render_qr(QR_A, 4)
    frame[100 : 100 + a.shape[0], 80 : 80 + a.shape[1]] = a
    b = cv2.GaussianBlur(synth.render_qr(QR_B, 2).astype(np.float32), (0, 0), 1.0)
    frame[300 : 300 + b.shape[0], 800 : 800 + b.shape[1]] = b
    frame = np.clip(frame + rng.normal(0, 3, frame.shape), 0, 255).astype(np.uint8)
    alone = ZxingDecoder()
    assert [s.text for s in alone.decode(frame)] == [QR_A] and alone.candidates
    found = Scanner("zxing", None).decode(frame)
    assert sorted(s.text for s in found) == sorted([QR_A, QR_B])  # each once
    second = next(s for s in found if s.text == QR_B)
    xs = [p[0] for p in second.polygon]
    assert min(xs) > 780 and max(xs) < 800 + b.shape[1] + 20  # frame pixels, not the crop's


class _FlakyIdReader:
    """An OCR that reads the card on some attempts only (``script``: True = read)."""

    def __init__(self, script: list[bool], text: str = "P<UTO...") -> None:
        self.script = list(script)
        self.sym = Symbol("MRZ", text, text.encode(), ())

    def read(self, _frame: np.ndarray) -> list:
        return [self.sym] if self.script.pop(0) else []


def _moving_frames(n: int) -> list[np.ndarray]:
    base = synth.blank_frame(640, 480, seed=3)
    return [cv2.convertScaleAbs(base, alpha=1.0, beta=(i % 2) * 40) for i in range(n)]


def test_a_card_the_ocr_misses_now_and_then_is_one_presentation() -> None:
    from sentinel.scan.tracker import PresentationTracker

    # attempts on every 2nd frame: read, miss, miss, read, miss, read
    reader = _FlakyIdReader([True, False, False, True, False, True])
    sc = Scanner("zxing", None, id_reader=reader, id_every_frames=2)
    tracker = PresentationTracker(cooldown_s=60, absent_frames=3)
    started = []
    for i, frame in enumerate(_moving_frames(12)):
        started += tracker.update(sc.scan(frame), now=i / 10)
    assert [s.kind for s in started] == ["MRZ"]  # one decision, not two


def test_a_card_taken_away_is_gone_after_a_few_empty_attempts() -> None:
    reader = _FlakyIdReader([True] + [False] * 5)
    sc = Scanner("zxing", None, id_reader=reader, id_every_frames=1)
    seen = [bool(sc.scan(f)) for f in _moving_frames(6)]
    # read, held through ID_MISSES empty attempts, then gone
    assert seen == [True, True, True, False, False, False]


AAMVA = "@\nANSI 636000090002DL00410278ZV03190008DLDAQT64235789\nDCSSAMPLE\nDACMICHAEL\n"


def _licence_frame(angle: float, seed: int) -> np.ndarray:
    import zxingcpp

    barcode = zxingcpp.create_barcode(AAMVA, zxingcpp.BarcodeFormat.PDF417)
    img = np.array(barcode.to_image(scale=3, add_quiet_zones=True))
    d = synth.Degrade(angle_deg=angle, fill=0.3, noise=2)
    return cv2.cvtColor(synth.place_image(img, 1280, 720, d, seed), cv2.COLOR_BGR2GRAY)


@pytest.mark.parametrize("seed", [1, 2])
def test_an_id_barcode_is_read_upright_at_once_and_turned_on_the_next_attempt(seed: int) -> None:
    from sentinel.scan.mrz import IdReader

    upright = _licence_frame(1.0, seed)
    sc = Scanner("zxing", None, id_reader=IdReader("template"))
    got = sc.read_id(upright)
    assert [(s.kind, s.text) for s in got] == [("PDF417", AAMVA)]
    # a licence held in portrait: read on the attempt that turns the frame (the next one),
    # not on an upright one (zxing-cpp does not turn it), then on the turned one again
    portrait = cv2.rotate(upright, cv2.ROTATE_90_COUNTERCLOCKWISE)
    assert [s.text for s in sc.read_id(portrait)] == [AAMVA]
    assert sc.read_id(portrait) == []
    got = sc.read_id(portrait)
    assert [s.text for s in got] == [AAMVA]
    # its polygon is in portrait-frame pixels: where zxing-cpp, turning it itself, puts it
    from sentinel.scan.decoders import ZxingDecoder

    (truth,) = ZxingDecoder(("PDF417",)).decode(portrait)
    for corner in got[0].polygon:
        assert min(abs(corner[0] - x) + abs(corner[1] - y) for x, y in truth.polygon) <= 8


def test_deblur_deconvolves_code_like_regions_not_print_on_a_card(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The deblur retry costs ~6 ms: it runs on a region as dark as a code is, not on the
    text and guilloche of an ID card held up (which the card's frames would pay for)."""
    import sentinel.scan.decoders as dec
    from sentinel.scan.qr_finder import texture_candidates

    calls: list[float] = []
    real = dec.wiener
    monkeypatch.setattr(dec, "wiener", lambda g, s, k: calls.append(s) or real(g, s, k))
    cs = _corpus_scan()
    rng = np.random.default_rng(4)
    cards = [cs.id_sample("td1_photo", "TD1", rng, 40 + i).frame for i in range(4)]
    cards = [cv2.cvtColor(c, cv2.COLOR_BGR2GRAY) if c.ndim == 3 else c for c in cards]
    assert any(texture_candidates(c) for c in cards)  # the card's print is textured
    for c in cards:
        Scanner("zxing", None).decode(c)
    assert calls == []
    code = synth.render_qr(SMALL, module_px=4)
    d = synth.Degrade(angle_deg=8.0, blur_px=1.4, noise=3.0, fill=code.shape[0] / 4 * 2.4 / 480)
    g = cv2.cvtColor(synth.place(code, 640, 480, d, 0), cv2.COLOR_BGR2GRAY)
    assert [x.text for x in Scanner("zxing", None).decode(g)] == [SMALL] and calls

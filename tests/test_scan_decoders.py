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

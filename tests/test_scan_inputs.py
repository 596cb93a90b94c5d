"""Hostile and awkward scanner inputs: decompression bombs, FIFOs, unreadable files in a
folder, payloads that are not UTF-8, light-on-dark codes (security review D9, issue 15)."""

from __future__ import annotations

import json
import os
import struct
import threading
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from sentinel.cli import main
from sentinel.errors import HardwareError
from sentinel.scan import synth
from sentinel.scan.decoders import OpenCVDecoder, Scanner
from sentinel.scan.images import ImageRefused, load_image
from sentinel.scan.sources import ImageSource


def _bomb_png(path: Path, side: int = 20000) -> None:
    """A valid 1-bit PNG of ``side``×``side`` zeros: ~50 KB on disk, 1.2 GB as BGR."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    row = b"\x00" * (1 + side // 8)
    comp = zlib.compressobj(9)
    body = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )


def test_decompression_bomb_is_refused_from_its_header(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    _bomb_png(bomb)
    assert bomb.stat().st_size < 200_000
    t = time.perf_counter()
    with pytest.raises(ImageRefused, match="pixels"):
        load_image(bomb)
    assert time.perf_counter() - t < 1.0  # refused before any pixel is decoded
    with pytest.raises(HardwareError, match="pixels"):
        list(ImageSource([bomb]).frames())


def _in_thread(fn, timeout_s: float = 10.0):  # noqa: ANN001, ANN202
    out: dict[str, object] = {}

    def run() -> None:
        try:
            out["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            out["error"] = exc

    th = threading.Thread(target=run, daemon=True)
    th.start()
    th.join(timeout_s)
    assert not th.is_alive(), "blocked on the input"
    return out


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "code.png"
    os.mkfifo(fifo)
    out = _in_thread(lambda: load_image(fifo))
    assert isinstance(out.get("error"), ImageRefused)
    assert "regular file" in str(out["error"])


def test_check_and_scan_refuse_a_bomb_and_a_fifo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sentinel.credentials.cli import _inputs

    _bomb_png(tmp_path / "a-bomb.png")
    os.mkfifo(tmp_path / "b-fifo.png")
    good = tmp_path / "c-good.png"
    cv2.imwrite(str(good), synth.place(synth.render_qr("hello"), 640, 480))
    t = time.perf_counter()
    found, _errors = _inputs([str(tmp_path / "a-bomb.png"), str(good)])
    assert found == [(str(tmp_path / "a-bomb.png"), None), (str(good), "hello")]
    out = _in_thread(lambda: main(["scan", "--no-ids", str(tmp_path)]))
    assert time.perf_counter() - t < 10
    assert out.get("value") == 1  # some files were refused
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [Path(x["file"]).name for x in lines] == ["a-bomb.png", "b-fifo.png", "c-good.png"]
    assert "pixels" in lines[0]["error"] and "regular file" in lines[1]["error"]
    assert lines[2]["symbols"] == [{"kind": "QRCODE", "text": "hello"}]


def test_scan_dir_goes_on_after_an_unreadable_image(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a-broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    (tmp_path / "b-text.png").write_text("hello")
    cv2.imwrite(str(tmp_path / "c-qr.png"), synth.place(synth.render_qr("second"), 640, 480))
    assert main(["scan", "--no-ids", str(tmp_path)]) == 1
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [Path(x["file"]).name for x in lines] == ["a-broken.jpg", "b-text.png", "c-qr.png"]
    assert "error" in lines[0] and "error" in lines[1]
    assert lines[2]["symbols"] == [{"kind": "QRCODE", "text": "second"}]
    # a directory as a frame source skips the unreadable files too
    frames = list(ImageSource.from_path(tmp_path).frames())
    assert len(frames) == 1


def _qr_bytes(data: bytes, box: int = 6) -> np.ndarray:
    import qrcode

    q = qrcode.QRCode(border=4, box_size=box)
    q.add_data(data)
    q.make()
    return np.array(q.make_image().convert("L"))


def test_opencv_backend_survives_a_payload_that_is_not_utf8() -> None:
    img = _qr_bytes(bytes(range(128, 250)))
    (sym,) = OpenCVDecoder().decode(img)
    assert sym.kind == "QRCODE" and sym.raw_bytes and sym.text


def test_opencv_backend_turns_a_binding_decode_error_into_no_read() -> None:
    # OpenCV 4.x's binding raises UnicodeDecodeError on a payload that is not UTF-8
    class Raising:
        def detectAndDecodeBytes(self, _img: np.ndarray):  # noqa: ANN202, N802
            raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")

    dec = OpenCVDecoder()
    dec._det = Raising()  # type: ignore[assignment]
    assert dec.decode(np.zeros((64, 64), np.uint8)) == []


@pytest.mark.parametrize("background", [0, 40])
def test_light_on_dark_codes_are_read(background: int) -> None:
    """White modules on black or on a dark green app screen (dark mode, watches)."""
    code = 255 - synth.render_qr("HC1:DARKMODE-TEST-1234567890", 5)
    code = np.where(code > 128, 235, background).astype(np.uint8)
    frame = synth.place(code, 640, 480, synth.Degrade(angle_deg=8, noise=3, fill=0.6), seed=2)
    (sym,) = Scanner("zxing", None, retries=False).decode(frame)
    assert sym.text == "HC1:DARKMODE-TEST-1234567890"

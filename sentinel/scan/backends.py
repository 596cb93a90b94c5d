"""The decoder back-ends behind one interface, ``decode(frame) -> list[Symbol]``:
zbar (pyzbar), zxing-cpp and OpenCV's QR detector.

The ``Scanner`` (``decoders.py``) combines them; which is primary and which runs as
fallback is chosen by ``benchmarks/bench_scan.py`` (table in docs/scanner.md).
"""

from __future__ import annotations

from typing import Protocol

import cv2
import numpy as np

from sentinel.scan.symbol import Symbol

__all__ = ["BACKENDS", "Decoder", "OpenCVDecoder", "PyzbarDecoder", "ZxingDecoder", "gray"]


class Decoder(Protocol):
    name: str

    def decode(self, frame: np.ndarray) -> list[Symbol]: ...


def gray(frame: np.ndarray) -> np.ndarray:
    """A single-channel view of a BGR or grayscale frame."""
    return frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


class PyzbarDecoder:
    name = "pyzbar"

    def __init__(self) -> None:
        from pyzbar import pyzbar

        self._zbar = pyzbar
        # QR and the 1D/2D symbologies on ID documents that zbar knows (no PDF417 in zbar)
        self._symbols = [pyzbar.ZBarSymbol.QRCODE, pyzbar.ZBarSymbol.CODE128]

    def decode(self, frame: np.ndarray) -> list[Symbol]:
        out = []
        for r in self._zbar.decode(gray(frame), symbols=self._symbols):
            poly = tuple((int(p.x), int(p.y)) for p in r.polygon)
            out.append(Symbol(str(r.type), _text(r.data), bytes(r.data), poly))
        return out


_ZXING_KIND = {"QRCode": "QRCODE", "PDF417": "PDF417", "Code128": "CODE128"}


class ZxingDecoder:
    """zxing-cpp limited to the symbologies asked for (QR codes by default).

    Restricting the formats is most of the speed: reading every format costs ~30 ms on a
    1280×720 frame here, QR alone ~3 ms; PDF417 and Code 128 (ID documents) add ~10 ms
    each, so the ``Scanner`` looks for them only on the frames where it looks for IDs.
    """

    name = "zxing"

    def __init__(
        self,
        formats: tuple[str, ...] = ("QRCode",),
        *,
        try_invert: bool = True,
        try_rotate: bool = True,
        try_downscale: bool = True,
        binarizer: str = "LocalAverage",
    ) -> None:
        import zxingcpp

        self._z = zxingcpp
        self._formats = [getattr(zxingcpp.BarcodeFormat, f) for f in formats]
        self._rotate, self._downscale = try_rotate, try_downscale
        self._binarizer = getattr(zxingcpp.Binarizer, binarizer)
        # light-on-dark codes (dark-mode phones, watches, green health-code screens):
        # zxing-cpp reads them itself for ~0.1 ms per empty 640×480 frame (docs/scanner.md)
        self._invert = try_invert
        # whether the last decode found a symbol it could not read (a finder pattern, a
        # checksum error): the Scanner retries only then, keeping empty frames cheap
        self.saw_candidate = False
        self.candidates: list[tuple[tuple[int, int], ...]] = []

    def decode(self, frame: np.ndarray) -> list[Symbol]:
        out = []
        results = self._z.read_barcodes(
            gray(frame),
            formats=self._formats,
            try_rotate=self._rotate,
            try_downscale=self._downscale,
            try_invert=self._invert,
            binarizer=self._binarizer,
            return_errors=True,
        )
        self.saw_candidate = bool(results)
        self.candidates = []
        for r in results:
            pos = r.position
            poly = tuple(
                (int(p.x), int(p.y))
                for p in (pos.top_left, pos.top_right, pos.bottom_right, pos.bottom_left)
            )
            if not r.valid:
                self.candidates.append(poly)  # found but not read: where to look closer
                continue
            name = r.format.name
            kind = _ZXING_KIND.get(name, name.upper())
            out.append(Symbol(kind, r.text, bytes(r.bytes), poly))
        return out


class OpenCVDecoder:
    name = "opencv"

    def __init__(self) -> None:
        self._det = cv2.QRCodeDetector()

    def decode(self, frame: np.ndarray) -> list[Symbol]:
        # the payload as bytes: a QR code's content need not be UTF-8 (the str variant
        # raises UnicodeDecodeError on such a code)
        try:
            raw, pts, _ = self._det.detectAndDecodeBytes(gray(frame))
        except (cv2.error, UnicodeDecodeError, ValueError):
            return []
        if not raw:
            return []
        data = bytes(raw)
        poly = tuple((int(x), int(y)) for x, y in pts[0]) if pts is not None else ()
        return [Symbol("QRCODE", _text(data), data, poly)]


BACKENDS = {"pyzbar": PyzbarDecoder, "zxing": ZxingDecoder, "opencv": OpenCVDecoder}

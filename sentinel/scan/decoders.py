"""Decoder back-ends behind one interface: ``decode(frame) -> list[Symbol]``."""

from __future__ import annotations

from typing import Protocol

import cv2
import numpy as np

from sentinel.scan.symbol import Symbol


class Decoder(Protocol):
    name: str

    def decode(self, frame: np.ndarray) -> list[Symbol]: ...


def _gray(frame: np.ndarray) -> np.ndarray:
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

    def decode(self, frame: np.ndarray) -> list[Symbol]:
        out = []
        for r in self._zbar.decode(_gray(frame)):
            poly = tuple((int(p.x), int(p.y)) for p in r.polygon)
            out.append(Symbol(str(r.type), _text(r.data), bytes(r.data), poly))
        return out


class ZxingDecoder:
    name = "zxing"

    def __init__(self) -> None:
        import zxingcpp

        self._z = zxingcpp

    def decode(self, frame: np.ndarray) -> list[Symbol]:
        out = []
        for r in self._z.read_barcodes(_gray(frame)):
            if not r.valid:
                continue
            pos = r.position
            poly = tuple(
                (int(p.x), int(p.y))
                for p in (pos.top_left, pos.top_right, pos.bottom_right, pos.bottom_left)
            )
            kind = str(r.format.name).upper().replace("QRCODE", "QRCODE")
            out.append(Symbol(kind, r.text, bytes(r.bytes), poly))
        return out


class OpenCVDecoder:
    name = "opencv"

    def __init__(self) -> None:
        self._det = cv2.QRCodeDetector()

    def decode(self, frame: np.ndarray) -> list[Symbol]:
        text, pts, _ = self._det.detectAndDecode(_gray(frame))
        if not text:
            return []
        poly = tuple((int(x), int(y)) for x, y in pts[0]) if pts is not None else ()
        return [Symbol("QRCODE", text, text.encode("utf-8"), poly)]


BACKENDS = {"pyzbar": PyzbarDecoder, "zxing": ZxingDecoder, "opencv": OpenCVDecoder}


class Scanner:
    """A primary decoder with an optional fallback on frames where it found nothing."""

    def __init__(self, backend: str = "zxing", fallback: str | None = "pyzbar") -> None:
        self.primary: Decoder = BACKENDS[backend]()
        self.fallback: Decoder | None = (
            BACKENDS[fallback]() if fallback and fallback != backend else None
        )

    def decode(self, frame: np.ndarray) -> list[Symbol]:
        found = self.primary.decode(frame)
        if not found and self.fallback is not None:
            found = self.fallback.decode(frame)
        return found

"""The contract out of the scan stage."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Symbol:
    """One decoded symbol in a frame.

    kind: "QRCODE", "PDF417", "CODE128", "MRZ", "ID_NUMBER", ...
    text: the decoded text (hostile: never shell, SQL or HTML unescaped)
    raw_bytes: the decoded payload bytes (for binary-mode QR codes)
    polygon: corner points in frame pixels, clockwise from top-left where known
    """

    kind: str
    text: str
    raw_bytes: bytes
    polygon: tuple[tuple[int, int], ...] = ()


def unscaled(symbols: list[Symbol], factor: float) -> list[Symbol]:
    """``symbols`` read on a copy ``factor`` times the frame's size, with their polygons
    back in the frame's own pixels."""
    if factor == 1.0:
        return symbols
    return [
        Symbol(
            s.kind,
            s.text,
            s.raw_bytes,
            tuple((int(x / factor), int(y / factor)) for x, y in s.polygon),
        )
        for s in symbols
    ]

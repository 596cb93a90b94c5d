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

"""Where the machine-readable zone is: single text lines first, then 2–3 of them that
are parallel, equally long and evenly spaced (an MRZ's lines, ICAO 9303-3 §4.3 fixed
pitch), in any orientation.

Each line is found on its own, not as one merged block: a TD1 card's three short lines
sit close to the card's other print, and a merged block loses the long, thin shape that
tells text lines from guilloche and photos.  Costs a few milliseconds on a copy at most
``LOCATE_WIDTH`` pixels wide.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

LOCATE_WIDTH = 640


@dataclass(frozen=True, slots=True)
class TextLine:
    """A rotated rectangle in frame pixels: centre, (length along the text, height), and
    the angle of the text direction in degrees (any of -180..180)."""

    center: tuple[float, float]
    size: tuple[float, float]
    angle_deg: float
    line_h: float = 0.0  # height of one of its lines (blocks of several lines)


def _line(rect: tuple, scale: float) -> TextLine:
    (cx, cy), (w, h), a = rect
    if w < h:
        w, h, a = h, w, a + 90
    a = (a + 90) % 180 - 90  # text direction in -90..90; 180° is decided when reading
    return TextLine((cx / scale, cy / scale), (w / scale, h / scale), a)


def _ink(small: np.ndarray) -> list[np.ndarray]:
    """Dark strokes standing out from their surroundings, binarised against the darkest
    ink in view (the MRZ is printed darker than guilloche and tints): once at Otsu's
    level, and once at 0.6 of the darkest strokes, which drops security print that
    crosses the lines (and would join them to rosettes) at the cost of faint print."""
    k = cv2.getStructuringElement(cv2.MORPH_RECT, (9, 9))
    bh = cv2.morphologyEx(small, cv2.MORPH_BLACKHAT, k)
    top = _percentile_u8(bh, 99.7)
    if top < 20:
        return []
    otsu, _ = cv2.threshold(bh, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    out = []
    for level in sorted({max(otsu, 0.35 * top), max(otsu, 0.6 * top)}):
        _, bw = cv2.threshold(bh, level, 255, cv2.THRESH_BINARY)
        out.append(bw)
    return out


def _percentile_u8(img: np.ndarray, q: float) -> float:
    """``np.percentile`` of a uint8 image to the grey level, from its histogram (a
    fraction of the cost of sorting)."""
    hist = cv2.calcHist([img], [0], None, [256], [0, 256]).ravel()
    cum = np.cumsum(hist)
    return float(np.searchsorted(cum, q / 100.0 * cum[-1]))


def text_lines(gray: np.ndarray, *, min_len_ratio: float = 7.0) -> list[TextLine]:
    """Long, thin runs of characters (both orientations), in frame pixels."""
    h, w = gray.shape[:2]
    scale = min(1.0, LOCATE_WIDTH / max(w, h))
    if max(w, h) < 480:  # a small scan: locate at a size where characters are a few px
        scale = 480 / max(w, h)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    size = (int(w * scale), int(h * scale))
    # at the size it has (a 640-pixel frame): no copy
    small = gray if size == (w, h) else cv2.resize(gray, size, interpolation=interp)
    out: list[TextLine] = []
    for bw in _ink(small):
        for horizontal in (True, False):
            for reach in (9, 15):  # gaps between characters: small print, then large
                kx, ky = (reach, 1) if horizontal else (1, reach)
                kernel = cv2.getStructuringElement(0, (kx, ky))
                joined = cv2.morphologyEx(bw, cv2.MORPH_CLOSE, kernel)
                out.extend(_long_runs(joined, small.shape[1], scale, horizontal, min_len_ratio))
    return _distinct(out)


def _long_runs(
    joined: np.ndarray, width: int, scale: float, horizontal: bool, min_len_ratio: float
) -> list[TextLine]:
    out = []
    contours, _ = cv2.findContours(joined, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    for c in contours:
        if len(c) < 5 or cv2.contourArea(c) < 40:
            continue
        rect = cv2.minAreaRect(c)
        length, height = max(rect[1]), min(rect[1])
        if height < 3 or length < min_len_ratio * height or length < 0.1 * width:
            continue
        # mostly ink inside the rectangle: text, not a thin curve of guilloche
        if cv2.contourArea(c) < 0.45 * length * height:
            continue
        line = _line(rect, scale)
        vertical = abs(line.angle_deg) > 45
        if vertical == horizontal:
            continue
        out.append(line)
    return out


def _distinct(lines: list[TextLine]) -> list[TextLine]:
    """One of each line found by several binarisations (the longest)."""
    out: list[TextLine] = []
    for ln in sorted(lines, key=lambda x: -x.size[0]):
        if not any(_same_line(ln, o) for o in out):
            out.append(ln)
    return out


def _same_line(a: TextLine, b: TextLine) -> bool:
    h = max(a.size[1], b.size[1])
    dist = np.hypot(a.center[0] - b.center[0], a.center[1] - b.center[1])
    da = abs((a.angle_deg - b.angle_deg + 90) % 180 - 90)
    return bool(dist < 0.5 * h and da < 3 and abs(a.size[0] - b.size[0]) < 0.1 * a.size[0])


def _direction(line: TextLine) -> np.ndarray:
    a = np.deg2rad(line.angle_deg)
    return np.array([np.cos(a), np.sin(a)])


def group_blocks(lines: list[TextLine], max_lines: int = 3) -> list[TextLine]:
    """Blocks of 1–``max_lines`` parallel lines of about the same length, each next to
    the other at 1.2–3.5 line heights: MRZ candidates, largest first (an 18-digit
    identity number is a block of one line)."""
    blocks: list[tuple[float, TextLine]] = []
    used = sorted(lines, key=lambda ln: -ln.size[0])
    for i, base in enumerate(used):
        d = _direction(base)
        n = np.array([-d[1], d[0]])
        c0 = np.array(base.center)
        members = [base]
        for other in used:
            if other is base:
                continue
            da = abs((other.angle_deg - base.angle_deg + 90) % 180 - 90)
            if da > 5 or abs(other.size[0] - base.size[0]) > 0.15 * base.size[0]:
                continue
            off = np.array(other.center) - c0
            along, across = float(off @ d), float(off @ n)
            hgt = max(base.size[1], other.size[1])
            if abs(along) > 0.12 * base.size[0] or abs(across) > 3.5 * hgt * max_lines:
                continue
            members.append(other)
        members.sort(key=lambda ln: float(np.array(ln.center) @ n))
        # consecutive runs with line-like spacing around the base line
        k = members.index(base)
        for size in range(min(max_lines, len(members)), 0, -1):
            for start in range(max(0, k - size + 1), min(k, len(members) - size) + 1):
                run = members[start : start + size]
                if not _evenly_spaced(run, n):
                    continue
                blocks.append((size * base.size[0] + 0.001 * i, _union(run, d, n)))
        del i
    blocks.sort(key=lambda b: -b[0])
    out: list[TextLine] = []
    for _, b in blocks:
        if not any(_same(b, o) for o in out):
            out.append(b)
    return out


def _evenly_spaced(run: list[TextLine], n: np.ndarray) -> bool:
    if len(run) == 1:
        return True
    pos = [float(np.array(ln.center) @ n) for ln in run]
    gaps = np.diff(pos)
    hgt = float(np.mean([ln.size[1] for ln in run]))
    if np.any(gaps < 1.2 * hgt) or np.any(gaps > 3.5 * hgt):
        return False
    return len(gaps) < 2 or float(gaps.max() - gaps.min()) < 0.35 * float(gaps.mean())


def _union(run: list[TextLine], d: np.ndarray, n: np.ndarray) -> TextLine:
    pts = np.concatenate([cv2.boxPoints((ln.center, ln.size, ln.angle_deg)) for ln in run]).astype(
        np.float64
    )
    a, b = pts @ d, pts @ n
    length, height = float(a.max() - a.min()), float(b.max() - b.min())
    ca, cb = (a.max() + a.min()) / 2, (b.max() + b.min()) / 2
    c = ca * d + cb * n
    angle = float(np.degrees(np.arctan2(d[1], d[0])))
    line_h = float(np.median([ln.size[1] for ln in run]))
    return TextLine((float(c[0]), float(c[1])), (length, height), angle, line_h)


def _same(a: TextLine, b: TextLine) -> bool:
    dist = np.hypot(a.center[0] - b.center[0], a.center[1] - b.center[1])
    return bool(
        dist < 0.1 * max(a.size[1], b.size[1]) and abs(a.size[1] - b.size[1]) < 0.2 * a.size[1]
    )


def find_blocks(gray: np.ndarray, *, limit: int = 6) -> list[TextLine]:
    """MRZ / identity-number candidates in ``gray``, most promising first, each grown to
    take in lines the locator missed (a line broken by glare or guilloche): a fifth
    longer, and 2.5 line heights above and below; the reader then finds the lines
    inside."""
    out: list[TextLine] = []
    for b in group_blocks(text_lines(gray)):
        lh = b.line_h or b.size[1]
        out.append(
            TextLine(b.center, (b.size[0] * 1.2 + 2 * lh, b.size[1] + 5 * lh), b.angle_deg, lh)
        )
        if len(out) >= limit:
            break
    return out

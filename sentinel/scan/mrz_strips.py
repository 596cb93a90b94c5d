"""The strips of an MRZ block: the merged-block locator (``find_text_lines``), the block
rotated upright (``crop_block``), the views it is read from (the crop, and a copy with the
security print removed), and its text lines cut on the ink's row profile and levelled
(``line_spans``, ``harmonize``, ``_level``).  ``mrz.IdReader`` reads the strips."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

_LOCATE_WIDTH = 640  # locate lines on a downscaled copy: cheap, and enough for MRZ text


@dataclass(frozen=True, slots=True)
class TextLine:
    """A long text line found in the frame: its rotated rectangle in frame pixels."""

    center: tuple[float, float]
    size: tuple[float, float]  # (length along the text, height)
    angle_deg: float


def _rect_as_line(rect: tuple) -> TextLine:
    (cx, cy), (w, h), a = rect
    if w < h:  # OpenCV's minAreaRect angle convention: make w the long side
        w, h, a = h, w, a - 90
    if a < -45:
        a += 180
    if a > 135:
        a -= 180
    if a > 45:
        a -= 180
    return TextLine((cx, cy), (w, h), a)


def find_text_lines(gray: np.ndarray, *, min_chars: int = 14) -> list[TextLine]:
    """Blocks of long dark-on-light text (one line, or an MRZ's 2–3 lines), in frame
    pixels, longest first.  Costs a few milliseconds on a 640-pixel-wide copy."""
    h, w = gray.shape[:2]
    scale = min(1.0, _LOCATE_WIDTH / w)
    size = (int(w * scale), int(h * scale))
    # at the size it has (a 640-pixel frame): no copy
    small = gray if size == (w, h) else cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    # black-hat: dark strokes thinner than the kernel stand out from the card background
    k = cv2.getStructuringElement(cv2.MORPH_RECT, (11, 11))
    bh = cv2.morphologyEx(small, cv2.MORPH_BLACKHAT, k)
    if int(bh.max()) < 25:  # nothing text-like at all: a flat scene
        return []
    _, bw = cv2.threshold(bh, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    # join the characters of a line, then neighbouring lines into a block
    joined = cv2.morphologyEx(
        bw, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (11, 3))
    )
    joined = cv2.morphologyEx(
        joined, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (3, 21))
    )
    joined = cv2.morphologyEx(
        joined, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (5, 3))
    )
    contours, _ = cv2.findContours(joined, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    lines = []
    for c in contours:
        if len(c) < 5:
            continue
        line = _rect_as_line(cv2.minAreaRect(c))
        length, height = line.size
        if height < 4 or length < 3.5 * height or length < 0.15 * small.shape[1]:
            continue
        if abs(line.angle_deg) > 40:
            continue
        lines.append(
            TextLine(
                (line.center[0] / scale, line.center[1] / scale),
                (length / scale, height / scale),
                line.angle_deg,
            )
        )
    lines.sort(key=lambda ln: -ln.size[0])
    return lines


def crop_block(gray: np.ndarray, block: TextLine, *, max_px: int = 4_000_000) -> np.ndarray:
    """The block rotated upright and cropped with a margin, at frame resolution."""
    a = block.angle_deg
    (cx, cy), (bw, bh) = block.center, block.size
    pad_x, pad_y = bh * 0.25 + 6, bh * 0.25 + 6
    out_w, out_h = int(bw + 2 * pad_x), int(bh + 2 * pad_y)
    if out_w < 8 or out_h < 8 or out_w * out_h > max_px:
        return np.zeros((0, 0), np.uint8)
    m = cv2.getRotationMatrix2D((float(cx), float(cy)), a, 1.0)
    m[0, 2] += out_w / 2 - cx
    m[1, 2] += out_h / 2 - cy
    return cv2.warpAffine(
        gray, m, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def _binarize(crop: np.ndarray) -> np.ndarray:
    """Ink (1) vs paper (0) of an upright crop: Otsu, tightened by a local threshold so a
    glare patch or a tint gradient does not turn a whole region into ink."""
    _, glob = cv2.threshold(crop, 0, 1, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    block = max(15, (min(crop.shape[:2]) // 4) | 1)
    lo, hi = np.percentile(crop[::2, ::2], (5, 95))  # a quarter of the pixels: enough
    c = max(3.0, 0.12 * float(hi - lo))  # dim or faded: a smaller margin
    loc = cv2.adaptiveThreshold(
        crop, 1, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, block, c
    )
    return (glob & loc).astype(np.uint8)


def _views(crop: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(grey, ink) pairs to read an upright crop from: the crop itself with
    ``_binarize``, and a copy with the security print removed — darkness relative to
    the local paper (so dim and bright frames alike), kept only where it comes near the
    darkest ink in view: an MRZ is printed darker than the guilloche crossing it, which
    otherwise joins its lines in the row profile and pulls the glyphs' correlation."""
    out = [(crop, _binarize(crop))]
    c = crop.astype(np.float32)
    k = max(7, int(min(crop.shape[:2]) * 0.08) | 1)
    # the local paper: a closing, on the 8-bit crop (the same values, a third of the cost)
    paper = cv2.morphologyEx(
        crop, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
    ).astype(np.float32)
    # glare adds light to ink and paper alike, so relative to its own paper the ink under
    # it is less dark: paper brighter than the crop's usual paper counts as the usual
    usual = float(np.median(paper[::4, ::4]))
    dark = (paper - c) / np.maximum(np.minimum(paper, usual), 8.0)
    top = float(np.percentile(dark[::2, ::2], 99.5))
    if top < 0.2:
        return out
    soft = np.clip((dark - 0.35 * top) / (0.4 * top), 0.0, 1.0)
    clean = (255.0 * (1.0 - soft)).astype(np.uint8)
    out.append((clean, (dark > 0.55 * top).astype(np.uint8)))
    return out


def _ink_extent(ink: np.ndarray) -> tuple[int, int] | None:
    """The columns of the longest run of text in a strip: inked columns, joined across
    gaps shorter than about a character (the strip's height), guilloche flecks aside."""
    h = ink.shape[0]
    cols = np.flatnonzero(ink.sum(axis=0) >= max(2, 0.12 * h))
    if len(cols) < 10:
        return None
    breaks = np.flatnonzero(np.diff(cols) > 1.3 * h)
    starts = np.concatenate(([0], breaks + 1))
    ends = np.concatenate((breaks, [len(cols) - 1]))
    best = int(np.argmax(cols[ends] - cols[starts]))
    return int(cols[starts[best]]), int(cols[ends[best]]) + 1


def line_spans(crop: np.ndarray, ink: np.ndarray, expect_h: float = 0.0) -> list[tuple[int, ...]]:
    """(top, bottom, left, right) of each text strip of an upright block, cut on the
    ink's row profile; with ``expect_h`` (a line's height from the locator), strips far
    from it are dropped."""
    rows = ink.sum(axis=1)
    on = rows > max(2, 0.04 * crop.shape[1], 0.2 * float(np.percentile(rows, 95)))
    strips = []
    y = 0
    n = len(on)
    while y < n:
        if not on[y]:
            y += 1
            continue
        y0 = y
        while y < n and on[y]:
            y += 1
        if y - y0 >= 6:
            strips.append((y0, y))
    if not strips:
        return []
    if expect_h:
        lo, hi = 0.5 * expect_h, 1.9 * expect_h
    else:
        tallest = max(b - a for a, b in strips)
        lo, hi = 0.5 * tallest, tallest
    out = []
    for a, b in strips:
        if not lo <= b - a <= hi:  # specks, underlines, guilloche, photos
            continue
        ext = _ink_extent(ink[a:b])
        if ext is not None:
            out.append((a, b, ext[0], ext[1]))
    return out


def split_lines(crop: np.ndarray, expect_h: float = 0.0) -> list[np.ndarray]:
    """The levelled text strips of an upright block (see ``line_spans``)."""
    ink = _binarize(crop)
    return [_level(crop, ink, *span) for span in line_spans(crop, ink, expect_h)]


def harmonize(spans: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
    """An MRZ's lines all run the full width (fillers are ink) from the same left edge
    (ICAO 9303-3 §4.3): a line whose extent reaches past the others' took in a fleck of
    guilloche or the card's edge by more than 0.4 of the finest pitch (44 a line), and is
    cut back to the innermost edges (a whole cell's reach shifts every cell of the line)."""
    if len(spans) < 2:
        return spans
    x0 = max(s[2] for s in spans)
    x1 = min(s[3] for s in spans)
    tol = max(3, int(0.4 * (x1 - x0) / 44))
    return [
        (a, b, x0 if x0 - left > tol else left, x1 if r - x1 > tol else r)
        for a, b, left, r in spans
    ]


def _level(crop: np.ndarray, ink: np.ndarray, a: int, b: int, x0: int, x1: int) -> np.ndarray:
    """One line, with the skew left over from the block's deskew removed: the ink's
    centre rows at both ends of the line give its slope; the tight crop then fits the
    glyph height, which the template OCR relies on."""
    h, w = crop.shape[:2]
    margin = max(2, (b - a) // 2)
    a2, b2 = max(0, a - margin), min(h, b + margin)
    band = ink[a2:b2, x0:x1].astype(np.float32)
    third = max(1, (x1 - x0) // 3)
    ys = np.arange(b2 - a2, dtype=np.float32)[:, None]

    def centre(part: np.ndarray) -> float | None:
        m = float(part.sum())
        return float((part * ys).sum() / m) if m > 0 else None

    left, right = centre(band[:, :third]), centre(band[:, -third:])
    if left is None or right is None:
        return crop[a:b, x0:x1]
    angle = np.degrees(np.arctan2(right - left, (x1 - x0) - third))
    # a third of a line height either side: the strip's extent, cut on a column profile
    # guilloche thinned, can clip a glyph's stem, and a clipped first glyph shifts the cells
    mx = max(2, (b - a) // 3)
    l0, r0 = max(0, x0 - mx), min(w, x1 + mx)
    region = crop[a2:b2, l0:r0]
    m = cv2.getRotationMatrix2D(((r0 - l0) / 2, (b2 - a2) / 2), float(angle), 1.0)
    level = cv2.warpAffine(
        region, m, (r0 - l0, b2 - a2), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    _, lk = cv2.threshold(level, 0, 1, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    on = lk.sum(axis=1) > max(2, 0.04 * lk.shape[1])
    top = bottom = (b2 - a2) // 2  # the run of inked rows around the line's middle
    if not on[top]:
        return crop[a:b, x0:x1]
    while top > 0 and on[top - 1]:
        top -= 1
    while bottom < len(on) - 1 and on[bottom + 1]:
        bottom += 1
    inked = lk[top : bottom + 1].sum(axis=0) >= 2
    if bottom - top < 4 or int(inked.sum()) < 10:
        return crop[a:b, x0:x1]
    gap = max(2, (bottom - top) // 3)
    lo, hi = _grow(inked, x0 - l0, gap, -1), _grow(inked, x1 - l0 - 1, gap, 1)
    cols = np.flatnonzero(inked[lo : hi + 1]) + lo
    if len(cols) < 10:
        return crop[a:b, x0:x1]
    return level[top : bottom + 1, cols[0] : cols[-1] + 1]


def _grow(inked: np.ndarray, start: int, gap: int, step: int) -> int:
    """From ``start``, the farthest inked column in direction ``step`` reached across
    gaps shorter than ``gap`` (a glyph clipped by the strip's edge, not a fleck beyond)."""
    i = last = start
    while 0 <= i + step < len(inked) and abs(i + step - last) <= gap:
        i += step
        if inked[i]:
            last = i
    return last

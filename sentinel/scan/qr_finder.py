"""Where a QR code too small for zxing-cpp to detect may be: the second, closer pass.

zxing-cpp finds a QR code by its finder patterns; below about two pixels per module (a
DCC is a version 10-17 code, 57-85 modules: a code under ~150 px at 640×480) it often does
not even report a candidate, so the ``Scanner``'s crop retry never runs.  This finds
regions with the texture a QR code has — dense edges in every direction, filling a square
— on a block map of the frame's local contrast, and returns their boxes so the scanner can
read each crop again at 3× the resolution.

Cheap by construction (measured in ``benchmarks/bench_scan.py``): one 3×3 morphological
gradient, one area downscale to 8×8-pixel blocks, connected components on a few thousand
cells.  Elongated texture (a line of text, an MRZ, a barcode) and regions too large to be
a small code are not candidates.
"""

from __future__ import annotations

import cv2
import numpy as np

CELL = 8  # pixels per block of the contrast map
MIN_CONTRAST = 60  # mean 3×3 gradient (grey levels) of a block inside a code
MIN_BLOCKS = 4  # a candidate spans at least 4×4 blocks (32 px)
MAX_SIDE = 0.6  # of the frame's shorter side: larger codes are zxing-cpp's own
MIN_FILL = 0.45  # share of the candidate's box covered by textured blocks
_KERNEL = np.ones((3, 3), np.uint8)


def texture_candidates(
    g: np.ndarray, *, max_candidates: int = 2
) -> list[tuple[int, int, int, int]]:
    """Boxes ``(x, y, w, h)`` in frame pixels of square, densely textured regions, the
    most textured first."""
    h, w = g.shape[:2]
    if h < CELL * MIN_BLOCKS or w < CELL * MIN_BLOCKS:
        return []
    grad = cv2.morphologyEx(g, cv2.MORPH_GRADIENT, _KERNEL)
    blocks = cv2.resize(grad, (w // CELL, h // CELL), interpolation=cv2.INTER_AREA)
    mask = cv2.morphologyEx((blocks > MIN_CONTRAST).astype(np.uint8), cv2.MORPH_CLOSE, _KERNEL)
    n, _labels, stats, _c = cv2.connectedComponentsWithStats(mask, connectivity=8)
    limit = MAX_SIDE * min(h, w) / CELL
    found: list[tuple[int, tuple[int, int, int, int]]] = []
    for i in range(1, n):
        x, y, bw, bh, area = (int(v) for v in stats[i])
        if bw < MIN_BLOCKS or bh < MIN_BLOCKS or max(bw, bh) > limit:
            continue
        if not 0.5 < bw / bh < 2.0 or area < MIN_FILL * bw * bh:
            continue
        found.append((area, (x * CELL, y * CELL, bw * CELL, bh * CELL)))
    found.sort(key=lambda item: item[0], reverse=True)
    return [box for _area, box in found[:max_candidates]]


def crop_around(
    g: np.ndarray, box: tuple[int, int, int, int], *, target: int = 420, max_factor: float = 4.0
) -> tuple[np.ndarray, int, int, float]:
    """The region around ``box`` with a quiet-zone margin, upscaled (bicubic) so its
    longer side is about ``target`` pixels: ``(crop, x0, y0, factor)``."""
    x, y, bw, bh = box
    m = max(bw, bh) // 4 + CELL
    x0, y0 = max(0, x - m), max(0, y - m)
    x1, y1 = min(g.shape[1], x + bw + m), min(g.shape[0], y + bh + m)
    crop = g[y0:y1, x0:x1]
    factor = min(max_factor, max(1.0, target / max(crop.shape[:2])))
    if factor > 1.0:
        crop = cv2.resize(crop, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
    return crop, x0, y0, factor

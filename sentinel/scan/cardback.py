"""Is the visitor holding up the back of a Chinese resident identity card?

The back of the card (GB 11643's number is on the front) carries the national emblem,
the title 中华人民共和国 / 居民身份证, and 签发机关 (issuing authority) and 有效期限
(validity period), but no number: without this, the kiosk waits in silence while the
visitor shows the wrong side.  ``CardBackDetector.detect`` finds lines of large print
(any orientation), crops each upright (and turned 180°), and matches the characters of
those words in order (per-glyph normalized correlation with templates rendered from Noto
Sans CJK SC, shipped as ``models/cardback_glyphs.npz``; ``scripts/cardback_glyphs.py``).
One of the four words makes a card back (the title needs a higher score).

A hint, not a decision: the scanner calls it only on frames where the ID reader read
nothing but saw text-like print (``Scanner.read_id``), and the kiosk shows "turn the card
over"; nothing is journaled and nothing on the card is read or kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

MODEL = Path(__file__).parent / "models" / "cardback_glyphs.npz"
GLYPH_H = 14  # template and line-crop height (pixels): a line's ink band
GLYPH_W = 15  # template width: one em
WORDS = {
    "title": "居民身份证",
    "state": "中华人民共和国",
    "authority": "签发机关",
    "validity": "有效期限",
}
CARD_BACK = "card_back"  # the hint's name (sentinel.web.cues.HINTS has its words)
# a word is there when the mean correlation of its characters, matched in order along
# one line, reaches this (set on the seeded corpus, seed 16: fronts and other documents
# score at most 0.44 for these words; bench_cardback.py reports on another seed).  The
# title needs more: the front's 公民身份号码 holds 民身份 of it (fronts up to 0.61).
THRESHOLD = 0.56
TITLE_THRESHOLD = 0.68
_LOCATE = 640
_MAX_LINES = 20  # the tallest print first; a cluttered scene has many lines


@dataclass(frozen=True, slots=True)
class _Line:
    center: tuple[float, float]
    size: tuple[float, float]  # (length along the text, height)
    angle_deg: float


class CardBackDetector:
    """``detect(gray)`` -> ``CARD_BACK`` or None; ``scores(gray)`` the best score of each
    word (for the benchmark)."""

    def __init__(self, model: Path = MODEL) -> None:
        data = np.load(model)
        chars, rows = [], []
        for key in sorted(data.files):
            g = data[key].astype(np.float32)
            if g.shape != (GLYPH_H, GLYPH_W):
                raise ValueError(f"card-back glyph {key} is {g.shape}, not {GLYPH_H}x{GLYPH_W}")
            chars.append(chr(int(key.split("_", 1)[1], 16)))
            rows.append(_normalized(g.reshape(1, -1))[0])
        missing = set("".join(WORDS.values())) - set(chars)
        if missing:
            raise ValueError(f"card-back glyphs missing from {model}: {''.join(sorted(missing))}")
        self._t = np.stack(rows)  # (templates, H*W), zero mean, unit norm
        self._of: dict[str, list[int]] = {}
        for i, ch in enumerate(chars):
            self._of.setdefault(ch, []).append(i)

    def detect(self, gray: np.ndarray) -> str | None:
        return CARD_BACK if is_back(self.scores(gray)) else None

    def scores(self, gray: np.ndarray) -> dict[str, float]:
        best = dict.fromkeys(WORDS, 0.0)
        if gray.ndim == 3:
            gray = cv2.cvtColor(gray, cv2.COLOR_BGR2GRAY)
        for line in _lines(gray)[:_MAX_LINES]:
            crop = _upright(gray, line)
            if crop is None:
                continue
            for view in (crop, crop[::-1, ::-1]):
                # every word starts its line (the labels) or is all of it (the titles);
                # a line none of whose first ems looks like one of the characters is
                # not matched further (most lines in a cluttered scene)
                head = self._correlations(view[:, : _PROBE_EMS * GLYPH_W])
                if max(float(v.max()) for v in head.values()) < _PROBE:
                    continue
                view = view[:, : _HEAD_EMS * GLYPH_W]
                per_char = self._correlations(view)
                for word, chars in WORDS.items():
                    if view.shape[1] >= 0.6 * len(chars) * GLYPH_W:
                        best[word] = max(best[word], _in_order(per_char, chars))
        return best

    def _correlations(self, line: np.ndarray) -> dict[str, np.ndarray]:
        """Per character, its correlation with the window starting at every
        ``_STEP``-th column of ``line`` (the best of its template variants)."""
        win = np.lib.stride_tricks.sliding_window_view(line, (GLYPH_H, GLYPH_W))[0, ::_STEP]
        x = _normalized(win.reshape(len(win), -1))
        # OpenCV's product: numpy's BLAS threads cost ~4x more on a busy 2-core machine
        r = cv2.gemm(x, self._t, 1.0, None, 0.0, flags=cv2.GEMM_2_T)  # (windows, templates)
        return {ch: r[:, idx].max(axis=1) for ch, idx in self._of.items()}


def is_back(scores: dict[str, float]) -> bool:
    """The decision on ``CardBackDetector.scores``: one word of the card back found."""
    if scores["title"] >= TITLE_THRESHOLD:
        return True
    return any(v >= THRESHOLD for w, v in scores.items() if w != "title")


_STEP = 2  # columns between two windows
_HEAD_EMS = 11  # of each line, only the first ems are matched
_PROBE_EMS = 4  # ... after its first ems showed one character at least this well:
_PROBE = 0.6


def _normalized(x: np.ndarray) -> np.ndarray:
    """Rows with zero mean and unit norm (normalized correlation is then a dot product)."""
    x = x - x.mean(axis=1, keepdims=True)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-3)


def _in_order(per_char: dict[str, np.ndarray], chars: str) -> float:
    """Mean correlation of ``chars`` placed left to right (each at its best window at
    least ~0.7 of a glyph after the previous one's), in [-1, 1]."""
    gap = max(1, int(0.7 * GLYPH_W / _STEP))
    acc: np.ndarray | None = None
    for ch in chars:
        score = per_char[ch]
        if acc is not None:
            if len(acc) <= gap:
                return -1.0
            prev = np.maximum.accumulate(acc)
            shifted = np.full(len(acc), -np.inf, np.float32)
            shifted[gap:] = prev[:-gap]
            score = shifted + score
        acc = score
    assert acc is not None
    return float(acc.max()) / len(chars)


def _lines(gray: np.ndarray) -> list[_Line]:
    """Lines of print a few characters long (CJK, widely spaced or not), both
    orientations, in frame pixels, the tallest first (the title is the card's largest
    print)."""
    h, w = gray.shape[:2]
    scale = min(1.0, _LOCATE / max(w, h))
    small = cv2.resize(gray, (int(w * scale), int(h * scale)), interpolation=cv2.INTER_AREA)
    bh = cv2.morphologyEx(small, cv2.MORPH_BLACKHAT, cv2.getStructuringElement(0, (15, 15)))
    top = float(np.percentile(bh[::2, ::2], 99.7))
    if top < 30:
        return []
    otsu, _ = cv2.threshold(bh, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    out: list[_Line] = []
    # binarized against the darkest print in view: security print and guilloche, lighter
    # than the card's text, would join its lines
    for level in sorted({max(otsu, 0.4 * top), max(otsu, 0.6 * top)}):
        _, bw = cv2.threshold(bh, level, 255, cv2.THRESH_BINARY)
        out.extend(_runs(bw, scale))
    out.sort(key=lambda ln: -ln.size[1])
    return out


def _runs(bw: np.ndarray, scale: float) -> list[_Line]:
    out: list[_Line] = []
    for horizontal in (True, False):
        for reach in (9, 15):
            k = (reach, 5) if horizontal else (5, reach)
            joined = cv2.morphologyEx(bw, cv2.MORPH_CLOSE, cv2.getStructuringElement(0, k))
            contours, _ = cv2.findContours(joined, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            for c in contours:
                if len(c) < 5 or cv2.contourArea(c) < 60:
                    continue
                (cx, cy), (rw, rh), a = cv2.minAreaRect(c)
                if rw < rh:
                    rw, rh, a = rh, rw, a + 90
                length, height = rw, rh
                if not 6 <= height <= 45 or not 2.5 * height <= length <= 30 * height:
                    continue
                a = (a + 90) % 180 - 90
                if (abs(a) > 45) == horizontal:
                    continue
                out.append(_Line((cx / scale, cy / scale), (length / scale, height / scale), a))
    return out


def _upright(gray: np.ndarray, line: _Line) -> np.ndarray | None:
    """The line rotated upright, its ink band scaled to ``GLYPH_H`` rows (float32): the
    run of inked rows around the located line's middle (the located height is a few
    pixels off either way at the locator's scale)."""
    (cx, cy), (lw, lh) = line.center, line.size
    pad_x, pad_y = 0.3 * lh + 4, 0.35 * lh + 2
    out_w, out_h = int(lw + 2 * pad_x), int(lh + 2 * pad_y)
    if out_w < 16 or lh < 6:
        return None
    m = cv2.getRotationMatrix2D((float(cx), float(cy)), line.angle_deg, 1.0)
    m[0, 2] += out_w / 2 - cx
    m[1, 2] += out_h / 2 - cy
    crop = cv2.warpAffine(gray, m, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=1)
    _, ink = cv2.threshold(crop, 0, 1, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    on = ink.sum(axis=1) > max(2, 0.02 * out_w)
    top = bottom = out_h // 2
    if on[top]:
        while top > 0 and on[top - 1]:
            top -= 1
        while bottom < out_h - 1 and on[bottom + 1]:
            bottom += 1
    if not 0.6 * lh <= bottom + 1 - top <= 1.4 * lh:  # no clear band: the located one
        top, bottom = int(pad_y), int(pad_y + lh) - 1
    band = crop[top : bottom + 1]
    width = max(GLYPH_W + 1, int(out_w * GLYPH_H / band.shape[0]))
    return cv2.resize(band, (width, GLYPH_H), interpolation=cv2.INTER_AREA).astype(np.float32)

"""ID documents from a camera frame: find long text lines (an MRZ block or an identity
number), deskew them, OCR them with Tesseract, and hand back ``Symbol``s whose text
passed every check digit.

OCR runs Debian's ``tesseract`` binary with the image piped through stdin and the text
read from stdout, so no crop of a document ever touches the disk.  The character set is
restricted to the MRZ alphabet.  A read is returned only when ``sentinel.credentials.
iddoc`` accepts it (all check digits, the composite, real dates), so an OCR error asks
for another frame instead of producing a wrong number.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from sentinel.errors import CredentialError, HardwareError
from sentinel.scan.symbol import Symbol

_WHITELIST = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789<"
_LOCATE_WIDTH = 640  # locate lines on a downscaled copy: cheap, and enough for MRZ text
OCRB_FONT = "/usr/share/fonts/opentype/ocr-b/OCRB.otf"


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
    small = cv2.resize(gray, (int(w * scale), int(h * scale)), interpolation=cv2.INTER_AREA)
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
    lo, hi = np.percentile(crop, (5, 95))
    c = max(3.0, 0.12 * float(hi - lo))  # dim or faded: a smaller margin
    loc = cv2.adaptiveThreshold(
        crop, 1, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, block, c
    )
    return (glob & loc).astype(np.uint8)


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
    guilloche or the card's edge, and is cut back to the innermost edges."""
    if len(spans) < 2:
        return spans
    x0 = max(s[2] for s in spans)
    x1 = min(s[3] for s in spans)
    tol = max(3, int(0.02 * (x1 - x0)))
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
    if abs(angle) < 0.15:
        return crop[a:b, x0:x1]
    region = crop[a2:b2, x0:x1]
    m = cv2.getRotationMatrix2D(((x1 - x0) / 2, (b2 - a2) / 2), float(angle), 1.0)
    level = cv2.warpAffine(
        region, m, (x1 - x0, b2 - a2), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
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
    cols = np.flatnonzero(lk[top : bottom + 1].sum(axis=0) >= 2)
    if bottom - top < 4 or len(cols) < 10:
        return crop[a:b, x0:x1]
    return level[top : bottom + 1, cols[0] : cols[-1] + 1]


class TemplateOCR:
    """Fixed-pitch OCR of OCR-B text by normalized correlation with rendered glyphs.

    MRZ text is one font (OCR-B, ISO 1073-2) at a fixed pitch, and the number of
    characters per line is fixed by the format, so each line is cut into ``n`` cells and
    every cell is matched against the 37 glyphs rendered from Debian's ``fonts-ocr-b``.
    """

    def __init__(
        self, font_path: str = OCRB_FONT, *, height_px: int = 20, classifier: Any = None
    ) -> None:
        from PIL import Image, ImageDraw, ImageFont

        # ocrb_net.CellClassifier: when set, templates only place the cells and the
        # network names the characters (measured better on degraded print, see docs)
        self.classifier = classifier

        size = 100
        font = ImageFont.truetype(font_path, size)
        adv = font.getlength("0")
        top, bottom = int(0.17 * size), int(0.96 * size)
        self.height = height_px
        self.adv_ratio = adv / (bottom - top)  # a glyph's advance over the line height
        self.cell_w = max(8, round(height_px * self.adv_ratio))
        self.ink_ratio = 0.0
        glyphs = []
        widths = []
        for ch in _WHITELIST:
            img = Image.new("L", (int(adv) + 4, size + 20), 255)
            ImageDraw.Draw(img).text((2, 0), ch, fill=0, font=font)
            a = np.asarray(img)[top:bottom, 2 : 2 + int(adv)]
            cols = np.flatnonzero((a < 128).sum(axis=0))
            widths.append((cols[-1] - cols[0] + 1) / adv if len(cols) else 0.0)
            glyphs.append(cv2.resize(a, (self.cell_w, height_px), interpolation=cv2.INTER_AREA))
        self.glyphs = glyphs
        # mean ink width of a glyph as a fraction of the pitch: places the last cell
        self.ink_ratio = float(np.mean(widths))

    def prepare(self, strip: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
        """Match every glyph along one strip: (responses per glyph and x, ink width at
        the template height, the padded line)."""
        h, w = strip.shape[:2]
        if h < 2 or w < 2:  # nothing left of the strip after levelling
            return np.full((len(self.glyphs), 1), -1.0, np.float32), 0.0, strip
        scale = self.height / h
        new_w = max(int(w * scale), self.cell_w + 1)
        line = cv2.resize(strip, (new_w, self.height), interpolation=cv2.INTER_AREA)
        line = cv2.copyMakeBorder(line, 0, 0, self.cell_w, self.cell_w, cv2.BORDER_REPLICATE)
        resp = np.stack([cv2.matchTemplate(line, g, cv2.TM_CCOEFF_NORMED)[0] for g in self.glyphs])
        return resp, w * scale, line

    def read_line(self, prepared: tuple, classes: str) -> tuple[str, float]:
        """Read ``len(classes)`` characters from a prepared strip, each among the characters
        its class allows (``_CLASSES``); return the text and its mean match score."""
        resp, ink_w = prepared[0], prepared[1]
        n = len(classes)
        pad = self.cell_w
        pitch = ink_w / (n - 1 + self.ink_ratio)
        masks = {
            c: np.array([ch in allowed for ch in _WHITELIST]) for c, allowed in _CLASSES.items()
        }
        # the first glyph's left ink edge is at ``pad``; glyphs have about
        # (1 - ink_ratio)/2 of a pitch of side bearing
        x = pad - (1 - self.ink_ratio) / 2 * pitch
        text, scores, starts = [], [], []
        slack = max(1, int(pitch * 0.25))
        width = resp.shape[1]
        for cls in classes:
            lo, hi = max(0, int(round(x)) - slack), min(width, int(round(x)) + slack + 1)
            if lo >= hi:
                return "", 0.0
            allowed = np.where(masks[cls][:, None], resp[:, lo:hi], -1.0)
            g, j = np.unravel_index(int(np.argmax(allowed)), allowed.shape)
            i = lo + int(j)
            text.append(_WHITELIST[int(g)])
            scores.append(float(allowed[g, j]))
            starts.append(i)
            # follow the found glyph, but keep to the pitch (drift from keystone)
            x = 0.5 * (x + i) + pitch
        if self.classifier is not None and len(prepared) > 2:
            return self._classify(prepared[2], starts, pitch, classes)
        return "".join(text), float(np.mean(scores))

    def _classify(
        self, line: np.ndarray, starts: list[int], pitch: float, classes: str
    ) -> tuple[str, float]:
        """Name the characters of the cells the templates placed, with the network; each
        cell is resampled to the pitch the network was trained on."""
        from sentinel.scan.ocrb_net import CELL_H, CELL_OFFSET, CELL_W

        f = pitch / self.cell_w  # line pixels per training pixel
        cells = []
        for i in starts:
            a = int(round(i - CELL_OFFSET * f))
            b = int(round(a + CELL_W * f))
            cell = line[:, max(0, a) : max(0, a) + max(1, b - a)]
            if cell.shape[1] < 2:
                cell = np.full((CELL_H, CELL_W), 255, np.uint8)
            cells.append(cv2.resize(cell, (CELL_W, CELL_H), interpolation=cv2.INTER_LINEAR))
        probs = self.classifier.probs(cells)
        text, scores = [], []
        for p, cls in zip(probs, classes, strict=True):
            masked = np.where(_MASKS[cls], p, -1.0)
            k = int(np.argmax(masked))
            text.append(_WHITELIST[k])
            scores.append(float(masked[k]))
        return "".join(text), float(np.mean(scores))


class TesseractOCR:
    """Debian's ``tesseract`` over pipes (no temporary files), MRZ alphabet only."""

    def __init__(self, binary: str = "tesseract", *, timeout_s: float = 5.0) -> None:
        path = shutil.which(binary)
        if path is None:
            raise HardwareError("tesseract is not installed (apt-get install tesseract-ocr)")
        self.binary = path
        self.timeout_s = timeout_s

    def read(self, image: np.ndarray, *, psm: int = 6) -> str:
        ok, png = cv2.imencode(".png", image)
        if not ok:
            return ""
        cmd = [
            self.binary, "stdin", "stdout", "--psm", str(psm), "--oem", "1", "-l", "eng",
            "-c", f"tessedit_char_whitelist={_WHITELIST}", "-c", "load_system_dawg=0",
            "-c", "load_freq_dawg=0",
        ]  # fmt: skip
        try:
            res = subprocess.run(  # noqa: S603 - fixed argv, no shell, image on stdin
                cmd,
                input=png.tobytes(),
                capture_output=True,
                timeout=self.timeout_s,
                check=False,
                env={"OMP_THREAD_LIMIT": "1", "PATH": "/usr/bin:/bin"},
            )
        except subprocess.TimeoutExpired:
            return ""
        return res.stdout.decode("ascii", "replace")


# Per-position character classes of each layout (ICAO 9303-4/5/6; GB 11643 for the
# identity number).  Reading a cell only among the characters its field allows removes
# the O/0, I/1, B/8 confusions of OCR-B; check digits still verify every field.
# L letter, A letter or filler, N letter/digit/filler, D digit, d digit or filler,
# S sex, X digit or 'X'
_CLASSES = {
    "L": "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "A": "ABCDEFGHIJKLMNOPQRSTUVWXYZ<",
    "N": _WHITELIST,
    "D": "0123456789",
    "d": "0123456789<",
    "S": "MFX<",
    "X": "0123456789X",
}
_MASKS = {c: np.array([ch in allowed for ch in _WHITELIST]) for c, allowed in _CLASSES.items()}
_LAYOUTS = {
    3: (("LA" + "AAA" + "N" * 9 + "d" + "N" * 15,
         "D" * 7 + "S" + "D" * 7 + "AAA" + "N" * 11 + "D",
         "A" * 30),),
    2: (("LA" + "A" * 42, "N" * 9 + "d" + "AAA" + "D" * 7 + "S" + "D" * 7 + "N" * 14 + "dD"),
        ("LA" + "A" * 34, "N" * 9 + "d" + "AAA" + "D" * 7 + "S" + "D" * 7 + "N" * 7 + "D")),
    1: (("D" * 17 + "X",),),
}  # fmt: skip


class IdReader:
    """Finds and reads MRZ blocks and identity numbers in a frame; verified reads only.

    ``engine`` is "template" (OCR-B templates, the default: measured more accurate and
    about a hundred times faster here, see docs/scanner.md) or "tesseract".
    """

    def __init__(self, engine: str = "template", *, max_blocks: int = 3, fuse: bool = True) -> None:
        from sentinel.scan.fusion import MrzVotes

        self.engine = engine
        self.max_blocks = max_blocks
        # votes across frames (a presentation is a second of video); stateless without
        self.votes: MrzVotes | None = MrzVotes() if fuse else None
        self._template: TemplateOCR | None = None
        self._cnn = None
        if engine == "cnn":
            from sentinel.scan.ocrb_net import CELL_H, CellClassifier, CnnLineReader

            t = TemplateOCR()
            self._cnn = CnnLineReader(CellClassifier(), t.ink_ratio, CELL_H * t.adv_ratio)
        elif engine == "template":
            self._template = TemplateOCR()
        self._tesseract = TesseractOCR() if engine == "tesseract" else None

    def _texts(self, crop: np.ndarray, expect_h: float = 0.0) -> list[tuple[str, float]]:
        """Candidate readings of the block, each with its mean match score."""
        if self._tesseract is not None:
            return [(self._tesseract.read(cv2.resize(crop, None, fx=2, fy=2)), 0.0)]
        if self._cnn is not None:
            return self._cnn_texts(crop, expect_h)
        assert self._template is not None
        ink = _binarize(crop)
        spans = line_spans(crop, ink, expect_h)[-5:]
        cache: dict[tuple[int, ...], tuple[np.ndarray, float]] = {}

        def prepared(span: tuple[int, ...]) -> tuple[np.ndarray, float]:
            if span not in cache:
                assert self._template is not None
                cache[span] = self._template.prepare(_level(crop, ink, *span))
            return cache[span]

        out = []
        # every run of 3, 2 or 1 consecutive lines, the bottom ones first (the MRZ is
        # the bottom of a card; the grown crop may hold other print above it)
        for count in (3, 2, 1):
            for start in range(len(spans) - count, -1, -1):
                run = harmonize(spans[start : start + count])
                if count > 1 and not _same_width(run):
                    continue
                lines = [prepared(sp) for sp in run]
                for layout in _LAYOUTS[count]:
                    if count > 1 and not _fits(run, len(layout[0])):
                        continue
                    reads = [
                        self._template.read_line(p, cl) for p, cl in zip(lines, layout, strict=True)
                    ]
                    text = "\n".join(t for t, _ in reads)
                    out.append((text, float(np.mean([sc for _, sc in reads]))))
        return out

    def _cnn_texts(self, crop: np.ndarray, expect_h: float) -> list[tuple[str, float]]:
        assert self._cnn is not None
        ink = _binarize(crop)
        spans = line_spans(crop, ink, expect_h)[-5:]
        strips: dict[tuple[int, ...], np.ndarray] = {}
        cache: dict[tuple[tuple[int, ...], int], np.ndarray | None] = {}

        def probs(span: tuple[int, ...], n: int) -> np.ndarray | None:
            if (span, n) not in cache:
                if span not in strips:
                    strips[span] = _level(crop, ink, *span)
                assert self._cnn is not None
                cache[(span, n)] = self._cnn.probs(strips[span], n)
            return cache[(span, n)]

        out = []
        for count in (3, 2, 1):
            for start in range(len(spans) - count, -1, -1):
                run = harmonize(spans[start : start + count])
                if count > 1 and not _same_width(run):
                    continue
                for layout in _LAYOUTS[count]:
                    ps = [probs(sp, len(cl)) for sp, cl in zip(run, layout, strict=True)]
                    if any(p is None for p in ps):
                        continue
                    texts, scores = [], []
                    for p, cl in zip(ps, layout, strict=True):
                        masked = np.where(np.stack([_MASKS[c] for c in cl]), p, -1.0)
                        idx = masked.argmax(axis=1)
                        texts.append("".join(_WHITELIST[i] for i in idx))
                        scores.append(float(masked[np.arange(len(cl)), idx].mean()))
                    out.append(("\n".join(texts), float(np.mean(scores))))
        return out

    def read(self, frame: np.ndarray) -> list[Symbol]:
        """The first verified MRZ or identity number in ``frame`` (any orientation).

        With ``fuse`` the best unverified zone read of each frame also votes
        (``fusion.MrzVotes``), and a fused zone that passes every check is returned."""
        from sentinel.scan.mrz_locate import find_blocks

        gray = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        best: tuple[float, str, object] | None = None
        # line-by-line candidates first, then the merged-block ones (clean, large cards)
        blocks = find_blocks(gray)[: self.max_blocks] + find_text_lines(gray)[:1]
        for block in blocks:
            crop = crop_block(gray, block)
            if crop.size == 0:
                continue
            for upright in (crop, cv2.rotate(crop, cv2.ROTATE_180)):
                texts = self._texts(upright, getattr(block, "line_h", 0.0))
                found = self._verified(texts, block)
                if found:
                    if self.votes is not None:
                        self.votes.reset()
                    return found
                for text, score in texts:
                    if "\n" in text and (best is None or score > best[0]):
                        best = (score, text, block)
        if self.votes is None:
            return []
        if best is None:
            self.votes.idle()
            return []
        fused = self.votes.add(best[1], best[0])
        if fused is None:
            return []
        self.votes.reset()
        return [Symbol("MRZ", fused, fused.encode("ascii"), _poly(best[2]))]

    def _verified(self, texts: list[tuple[str, float]], block: object) -> list[Symbol]:
        from sentinel.credentials import iddoc

        for text, _ in texts:
            for kind, candidate in _candidates(text):
                try:
                    if kind == "MRZ":
                        iddoc.parse_mrz(candidate)
                    else:
                        iddoc.parse_cn_id(candidate)
                except CredentialError:
                    continue
                return [Symbol(kind, candidate, candidate.encode("ascii"), _poly(block))]
        return []


def _poly(b: object) -> tuple[tuple[int, int], ...]:
    box = cv2.boxPoints((b.center, b.size, b.angle_deg))  # type: ignore[attr-defined]
    return tuple((int(x), int(y)) for x, y in box)


def _same_width(run: list[tuple[int, ...]]) -> bool:
    widths = [r - left for _, _, left, r in run]
    return max(widths) <= 1.08 * min(widths)


def _fits(run: list[tuple[int, ...]], chars: int) -> bool:
    """Whether lines of ``chars`` characters at this height are plausible: OCR-B's
    pitch is ~0.7 of its line height here (0.45–1.1 allowed: blur and strip margins)."""
    width = float(np.median([r - left for _, _, left, r in run]))
    height = float(np.median([b - a for a, b, _, _ in run]))
    return 0.45 * height <= width / chars <= 1.1 * height


def _candidates(text: str) -> list[tuple[str, str]]:
    from sentinel.credentials import iddoc

    out: list[tuple[str, str]] = []
    mrz = iddoc.find_mrz(text)
    if mrz is not None:
        out.append(("MRZ", mrz))
    number = iddoc.find_cn_id(text)
    if number is not None:
        out.append(("ID_NUMBER", number))
    return out

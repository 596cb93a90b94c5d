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


def split_lines(crop: np.ndarray) -> list[np.ndarray]:
    """Horizontal text strips of an upright block, cut on the ink's row profile."""
    _, ink = cv2.threshold(crop, 0, 1, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    rows = ink.sum(axis=1)
    on = rows > max(2, 0.04 * crop.shape[1])
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
    tallest = max(b - a for a, b in strips)
    out = []
    for a, b in strips:
        if b - a < 0.5 * tallest:  # specks, underlines, guilloche
            continue
        cols = np.flatnonzero(ink[a:b].sum(axis=0) >= 2)
        if len(cols) < 10:
            continue
        out.append(_level(crop, ink, a, b, int(cols[0]), int(cols[-1]) + 1))
    return out


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

    def __init__(self, font_path: str = OCRB_FONT, *, height_px: int = 32) -> None:
        from PIL import Image, ImageDraw, ImageFont

        size = 100
        font = ImageFont.truetype(font_path, size)
        adv = font.getlength("0")
        top, bottom = int(0.17 * size), int(0.96 * size)
        self.height = height_px
        self.cell_w = max(8, round(height_px * adv / (bottom - top)))
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

    def prepare(self, strip: np.ndarray) -> tuple[np.ndarray, float]:
        """Match every glyph along one strip: (responses per glyph and x, strip scale)."""
        h, w = strip.shape[:2]
        scale = self.height / h
        new_w = max(int(w * scale), self.cell_w + 1)
        line = cv2.resize(strip, (new_w, self.height), interpolation=cv2.INTER_AREA)
        line = cv2.copyMakeBorder(line, 0, 0, self.cell_w, self.cell_w, cv2.BORDER_REPLICATE)
        resp = np.stack([cv2.matchTemplate(line, g, cv2.TM_CCOEFF_NORMED)[0] for g in self.glyphs])
        return resp, w * scale

    def read_line(self, prepared: tuple[np.ndarray, float], classes: str) -> tuple[str, float]:
        """Read ``len(classes)`` characters from a prepared strip, each among the characters
        its class allows (``_CLASSES``); return the text and its mean match score."""
        resp, ink_w = prepared
        n = len(classes)
        pad = self.cell_w
        pitch = ink_w / (n - 1 + self.ink_ratio)
        masks = {
            c: np.array([ch in allowed for ch in _WHITELIST]) for c, allowed in _CLASSES.items()
        }
        # the first glyph's left ink edge is at ``pad``; glyphs have about
        # (1 - ink_ratio)/2 of a pitch of side bearing
        x = pad - (1 - self.ink_ratio) / 2 * pitch
        text, scores = [], []
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
            # follow the found glyph, but keep to the pitch (drift from keystone)
            x = 0.5 * (x + i) + pitch
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

    def __init__(self, engine: str = "template", *, max_blocks: int = 4) -> None:
        self.engine = engine
        self.max_blocks = max_blocks
        self._template = TemplateOCR() if engine == "template" else None
        self._tesseract = TesseractOCR() if engine == "tesseract" else None

    def _texts(self, crop: np.ndarray) -> list[str]:
        if self._tesseract is not None:
            return [self._tesseract.read(cv2.resize(crop, None, fx=2, fy=2))]
        assert self._template is not None
        strips = split_lines(crop)[-3:]
        prepared = [self._template.prepare(st) for st in strips]
        out = []
        # the MRZ is the bottom of a card: try the last lines of the block first
        for count in (3, 2, 1):
            if len(strips) < count:
                continue
            for layout in _LAYOUTS[count]:
                lines = prepared[len(strips) - count :]
                texts = [
                    self._template.read_line(p, cl)[0] for p, cl in zip(lines, layout, strict=True)
                ]
                out.append("\n".join(texts))
        return out

    def read(self, frame: np.ndarray) -> list[Symbol]:
        from sentinel.credentials import iddoc

        gray = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        blocks = find_text_lines(gray)
        for block in blocks[: self.max_blocks]:
            crop = crop_block(gray, block)
            if crop.size == 0:
                continue
            for text in self._texts(crop):
                for kind, candidate in _candidates(text):
                    try:
                        if kind == "MRZ":
                            iddoc.parse_mrz(candidate)
                        else:
                            iddoc.parse_cn_id(candidate)
                    except CredentialError:
                        continue
                    poly = tuple(
                        (int(x), int(y))
                        for x, y in cv2.boxPoints((block.center, block.size, block.angle_deg))
                    )
                    return [Symbol(kind, candidate, candidate.encode("ascii"), poly)]
        return []


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

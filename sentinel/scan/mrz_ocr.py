"""OCR of MRZ lines: OCR-B template matching, Tesseract over pipes, the per-field
character classes of ICAO 9303 layouts, and the check-digit blind spots a read must
stay clear of.  ``mrz.IdReader`` uses these; ``ocrb_net`` is the network engine."""

from __future__ import annotations

import functools
import shutil
import subprocess

import cv2
import numpy as np

from sentinel.credentials.icao_codes import FIRST_CHARS
from sentinel.errors import HardwareError

_WHITELIST = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789<"
OCRB_FONT = "/usr/share/fonts/opentype/ocr-b/OCRB.otf"
# per cell, its close runners-up best first (see _BLIND_CLASSES), then after ``FAR`` the
# look-alikes of the winner that scored within the wider margin (template engine only)
Alts = list[str]
FAR = "|"
_ALTS_PER_CELL = 2


class TemplateOCR:
    """Fixed-pitch OCR of OCR-B text by normalized correlation with rendered glyphs.

    MRZ text is one font (OCR-B, ISO 1073-2) at a fixed pitch, and the number of
    characters per line is fixed by the format, so each line is cut into ``n`` cells and
    every cell is matched against the 37 glyphs rendered from Debian's ``fonts-ocr-b``.
    """

    def __init__(self, font_path: str = OCRB_FONT, *, height_px: int = 20) -> None:
        from PIL import Image, ImageDraw, ImageFont

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
        # the glyphs as unit vectors with their mean removed: one matrix product then gives
        # every glyph's normalized correlation (TM_CCOEFF_NORMED) at every x of a line
        t = np.stack([g.astype(np.float32).ravel() for g in glyphs])
        t -= t.mean(axis=1, keepdims=True)
        self._unit = (t / np.linalg.norm(t, axis=1, keepdims=True)).astype(np.float32)
        # the same, one row per (column of the glyph, glyph): a product with the line's
        # columns, summed along the diagonals, is the correlation without copying windows
        n_g = len(glyphs)
        self._by_column = np.ascontiguousarray(
            self._unit.reshape(n_g, height_px, self.cell_w).transpose(2, 0, 1)
        ).reshape(self.cell_w * n_g, height_px)
        # glyphs that look alike to the templates themselves (O and 0, U and 0, G and O,
        # P and R, ...): a misread between them is one the scores can hide
        self._alike = self._unit @ self._unit.T >= _ALIKE
        np.fill_diagonal(self._alike, False)
        # mean ink width of a glyph as a fraction of the pitch: places the last cell
        self.ink_ratio = float(np.mean(widths))

    def prepare(self, strip: np.ndarray, chars: int = 0) -> tuple[np.ndarray, float, np.ndarray]:
        """Match every glyph along one strip: (responses per glyph and x, ink width at
        the template height, the padded line).  With ``chars`` (the layout's characters
        per line) the strip is also stretched or squeezed across so that its pitch is the
        templates' (ICAO 9303 fixes the pitch, not the glyphs' height: printers, lenses
        and a tilted card change the ratio, and a round O then matches the narrower 0)."""
        h, w = strip.shape[:2]
        if h < 2 or w < 2:  # nothing left of the strip after levelling
            return np.full((len(self.glyphs), 1), -1.0, np.float32), 0.0, strip
        scale = self.height / h
        ink_w = w * scale
        if chars > 1:
            ink_w = self.cell_w * (chars - 1 + self.ink_ratio)
        new_w = max(int(round(ink_w)), self.cell_w + 1)
        line = cv2.resize(strip, (new_w, self.height), interpolation=cv2.INTER_AREA)
        line = cv2.copyMakeBorder(line, 0, 0, self.cell_w, self.cell_w, cv2.BORDER_REPLICATE)
        return self.correlate(line), ink_w, line

    def correlate(self, line: np.ndarray) -> np.ndarray:
        """(glyphs, x) normalized correlation of each glyph with the line (as tall as the
        glyphs) at each x: what ``cv2.matchTemplate(..., TM_CCOEFF_NORMED)`` gives per
        glyph (a flat window scores 0).  The glyphs have zero mean, so the numerator is
        their product with the raw window: one product of every glyph column with every
        line column, summed over the glyph's width; the window's spread comes from
        running sums."""
        n_g, cw = len(self.glyphs), self.cell_w
        f = line.astype(np.float32)
        n_x = f.shape[1] - cw + 1
        # OpenCV's product keeps to cv2.setNumThreads (numpy's BLAS threads contend)
        cols = cv2.gemm(self._by_column, f, 1.0, None, 0.0)
        resp = cols[:n_g, :n_x].copy()
        for c in range(1, cw):
            resp += cols[c * n_g : (c + 1) * n_g, c : c + n_x]
        d = f.astype(np.float64)
        s1 = np.concatenate(([0.0], np.cumsum(d.sum(axis=0))))
        s2 = np.concatenate(([0.0], np.cumsum((d * d).sum(axis=0))))
        w1, w2 = s1[cw:] - s1[:-cw], s2[cw:] - s2[:-cw]
        norm = np.sqrt(np.maximum(w2 - w1 * w1 / (self.height * cw), 0.0)).astype(np.float32)
        return np.where(norm > 1e-3, resp / np.maximum(norm, 1e-3), 0.0).astype(np.float32)

    def read_line(self, prepared: tuple, classes: str) -> tuple[str, float, bool]:
        """Read ``len(classes)`` characters from a prepared strip, each among the characters
        its class allows (``_CLASSES``); return the text, its mean match score, and whether
        a check-digit-blind rival came close (see ``_PARTNERS``)."""
        return self.read_cells(prepared, classes)[:3]  # type: ignore[return-value]

    def read_cells(self, prepared: tuple, classes: str) -> tuple[str, float, bool, Alts]:
        """``read_line`` and, per cell, the runners-up that came close (``Alts``)."""
        resp, ink_w = prepared[0], prepared[1]
        n = len(classes)
        pad = self.cell_w
        pitch = ink_w / (n - 1 + self.ink_ratio)
        # the first glyph's left ink edge is at ``pad``; glyphs have about
        # (1 - ink_ratio)/2 of a pitch of side bearing
        x = pad - (1 - self.ink_ratio) / 2 * pitch
        slack = max(1, int(pitch * 0.25))
        width = resp.shape[1]
        # each glyph's best response within ``slack`` of every x, at once
        near = cv2.dilate(
            resp, np.ones((1, 2 * slack + 1), np.uint8), borderType=cv2.BORDER_REPLICATE
        )
        near_x = np.ascontiguousarray(near.T)  # one row per x: a cell's glyphs at once
        xs = np.empty(n, np.int64)
        edges: dict[int, np.ndarray] = {}  # cells whose window runs past the line's end
        winners = np.empty(n, np.int64)
        for k, cls in enumerate(classes):
            xi = int(round(x))
            lo, hi = max(0, xi - slack), min(width, xi + slack + 1)
            if lo >= hi:
                return "", 0.0, True, []
            if lo == xi - slack and hi == xi + slack + 1:
                xs[k] = xi
                g = int((near_x[xi] + _OFF_CLASS[cls]).argmax())
            else:
                xs[k] = 0
                edges[k] = cell = resp[:, lo:hi].max(axis=1)
                g = int((cell + _OFF_CLASS[cls]).argmax())
            winners[k] = g
            # follow the found glyph, but keep to the pitch (drift from keystone)
            x = 0.5 * (x + lo + int(resp[g, lo:hi].argmax())) + pitch
        vals = near_x[xs]
        for k, cell in edges.items():
            vals[k] = cell
        best = np.where(_cell_masks(classes), vals, -1.0)  # per cell, each glyph's best
        rows = np.arange(n)
        top = best[rows, winners]
        close = best > (top - _TEMPLATE_MARGIN)[:, None]
        close[rows, winners] = False
        # check-digit-blind rivals close to the winner, in the fields the digits protect
        guarded = np.array([c in _BLIND_CLASSES for c in classes])
        blinds = guarded[:, None] & close & _PARTNER_MATRIX[winners]
        blind = bool(blinds.any())
        counts = np.minimum(close.sum(axis=1), _ALTS_PER_CELL).tolist()
        order = np.argsort(-np.where(close, best, -2.0), axis=1)[:, :_ALTS_PER_CELL].tolist()
        alts: Alts = [
            "".join(_WHITELIST[o] for o in order[k][:c]) if c else "" for k, c in enumerate(counts)
        ]
        # every blind rival within the margin is a runner-up too, past the first two: the
        # rival search must try it (the check digits cannot)
        for k in np.flatnonzero(blinds.any(axis=1)).tolist():
            extra = [_WHITELIST[j] for j in np.flatnonzero(blinds[k]).tolist()]
            alts[k] += "".join(ch for ch in extra if ch not in alts[k])
        # the far tier: look-alikes of the winner within the wider margin
        far = (best > (top - _WIDE_MARGIN)[:, None]) & ~close & self._alike[winners]
        for k in np.flatnonzero(far.any(axis=1)).tolist():
            js = np.flatnonzero(far[k])
            js = js[np.argsort(-best[k, js])][:_ALTS_PER_CELL].tolist()
            more = "".join(_WHITELIST[j] for j in js if _WHITELIST[j] not in alts[k])
            alts[k] += FAR + more if more else ""
        text = "".join(_WHITELIST[g] for g in winners.tolist())
        return text, float(np.mean(top)), blind, alts


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
# S sex, X digit or 'X'; and the first character of the document code, which ICAO 9303
# closes per shape (``icao_codes.FIRST_CHARS``): 1 for TD1 (A, C, I), 4 for 2×44 lines
# (P, or V for an MRV-A visa), 2 for 2×36 (A, C, I, or V for an MRV-B).  A misread first
# letter (I as J or L) used to fail the code check and lose the whole read.
_CLASSES = {
    "1": "".join(sorted(FIRST_CHARS["TD1"])),
    "4": "".join(sorted(FIRST_CHARS["TD3"] | FIRST_CHARS["MRV-A"])),
    "2": "".join(sorted(FIRST_CHARS["TD2"] | FIRST_CHARS["MRV-B"])),
    "L": "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "A": "ABCDEFGHIJKLMNOPQRSTUVWXYZ<",
    "N": _WHITELIST,
    "D": "0123456789",
    "d": "0123456789<",
    "S": "MFX<",
    "X": "0123456789X",
}
_MASKS = {c: np.array([ch in allowed for ch in _WHITELIST]) for c, allowed in _CLASSES.items()}
# added to a cell's correlations (-1..1) before its argmax: keeps to the cell's class
_OFF_CLASS = {c: np.where(m, 0.0, -4.0).astype(np.float32) for c, m in _MASKS.items()}


@functools.lru_cache(maxsize=64)
def _cell_masks(classes: str) -> np.ndarray:
    """(cells, glyphs): which glyphs each cell of a line's classes allows (a few layouts)."""
    return np.stack([_MASKS[c] for c in classes])


# ICAO 9303-3 §4.9's 7-3-1 check digit cannot tell characters whose values differ by a
# multiple of ten ("S"=28 and "8", "G"=16 and "6", "<" and "0", "K"=20 and "<"): in the
# fields check digits protect, a read where such a rival scored close to the winner is
# not accepted from one frame (the number would be another one that passes every check).
_VALUES = [0 if c == "<" else int(c, 36) for c in _WHITELIST]
_PARTNERS = [
    np.array([(v - u) % 10 == 0 and j != i for j, v in enumerate(_VALUES)])
    for i, u in enumerate(_VALUES)
]
_PARTNER_MATRIX = np.stack(_PARTNERS)
_BLIND_CLASSES = frozenset("Nd")
# Check digits catch any one wrong character but the blind rivals above, not two or three
# that cancel out: a hard-corpus frame read "F701Z5WD<" as "LZO1Z5WD<", three unsure cells
# whose errors cancel in both the number's check digit and the composite.  So each cell
# also reports its close runners-up (``Alts``: a string of them per cell, best first), and
# ``mrz.IdReader`` refuses a read when another one made of them passes every check too.

_TEMPLATE_MARGIN = 0.08  # correlation units
# Two confident misreads can cancel too: a TD1 under noise read J4QGUHOES as J4Q0UH0ES
# (G->0 a close runner-up, O->0 not: 0.09 behind), the two changes cancelling in the
# number's check digit and the composite.  So a cell also reports the look-alikes of its
# winner (template correlation with each other >= _ALIKE) within _WIDE_MARGIN, and the
# rival search pairs each of them with a close runner-up or another far look-alike
# elsewhere.  Chosen on the bench (--ids 24 before pitch matching: the wrong number
# refused); cost with pitch matching: 80 scans seeds 123/99/7 55/53/55 -> 54/52/55,
# id_corpus(8) 15/31/47 and print_aspect unchanged, bench ids 96 288/288 unchanged (the
# far-far pairs cost nothing more there).  Every pair of a close runner-up with any
# glyph within 0.10 cost 3 of 80 scans; within 0.12, 3-7.
_WIDE_MARGIN = 0.10
_ALIKE = 0.65
_CNN_RATIO = 0.1  # a rival with a tenth of the winner's probability is too close


def decide_cells(probs: np.ndarray, classes: str) -> tuple[str, float, bool]:
    """The text of one line from per-cell probabilities, each cell among its class, its
    mean probability, and whether a check-digit-blind rival came close."""
    return decide_cells_alts(probs, classes)[:3]  # type: ignore[return-value]


def decide_cells_alts(probs: np.ndarray, classes: str) -> tuple[str, float, bool, Alts]:
    """``decide_cells`` and, per cell, the runners-up that came close (``Alts``)."""
    text, scores, blind = [], [], False
    alts: Alts = []
    for p, cls in zip(probs, classes, strict=True):
        masked = np.where(_MASKS[cls], p, -1.0)
        k = int(np.argmax(masked))
        text.append(_WHITELIST[k])
        scores.append(float(masked[k]))
        close = np.flatnonzero(masked > _CNN_RATIO * float(masked[k]))
        close = close[close != k]
        top = close[np.argsort(-masked[close])][:_ALTS_PER_CELL].tolist()
        if cls in _BLIND_CLASSES:  # every close blind rival, past the first two
            partners = [int(c) for c in close if _PARTNERS[k][c]]
            blind = blind or bool(partners)
            top += [c for c in partners if c not in top]
        alts.append("".join(_WHITELIST[int(c)] for c in top))
    return "".join(text), float(np.mean(scores)), blind, alts


_LAYOUTS = {
    3: (("1A" + "AAA" + "N" * 9 + "d" + "N" * 15,
         "D" * 7 + "S" + "D" * 7 + "AAA" + "N" * 11 + "D",
         "A" * 30),),
    2: (("4A" + "A" * 42, "N" * 9 + "d" + "AAA" + "D" * 7 + "S" + "D" * 7 + "N" * 14 + "dD"),
        ("2A" + "A" * 34, "N" * 9 + "d" + "AAA" + "D" * 7 + "S" + "D" * 7 + "N" * 7 + "D")),
    1: (("D" * 17 + "X",),),
}  # fmt: skip


def split_alts(cell: str) -> tuple[str, str]:
    """A cell's ``Alts`` entry: (close runners-up, far look-alikes)."""
    near, _, far = cell.partition(FAR)
    return near, far

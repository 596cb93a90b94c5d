"""The ``Scanner``: the decoder back-ends (``backends.py``) combined with pre-processing,
retries, a fallback, a motion check and the ID-document reads.

Which back-end is primary and which runs as fallback is chosen by
``benchmarks/bench_scan.py`` (table in docs/scanner.md), not by habit.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from sentinel.errors import HardwareError
from sentinel.scan.backends import (  # re-exported: callers import them from here
    BACKENDS,
    Decoder,
    OpenCVDecoder,
    PyzbarDecoder,
    ZxingDecoder,
    gray,
)
from sentinel.scan.deblur import wiener
from sentinel.scan.motion import MotionGate
from sentinel.scan.qr_finder import crop_around, texture_candidates
from sentinel.scan.symbol import Symbol, unscaled

if TYPE_CHECKING:
    from sentinel.config import CameraConfig, ScanConfig

__all__ = [
    "BACKENDS",
    "CODE_UNREADABLE",
    "Decoder",
    "OpenCVDecoder",
    "PyzbarDecoder",
    "Scanner",
    "UNREAD_HINT_FRAMES",
    "ZxingDecoder",
    "gray",
]

log = logging.getLogger(__name__)


# Read attempts in a row that find no document before the last read one counts as gone
# (with id_every_frames = 2: ~6 frames, 0.6 s at 10 fps).
ID_MISSES = 2

# Decoded frames in a row in which zxing-cpp saw a QR code (finder patterns) it could not
# read before the kiosk asks the visitor to hold it still (~1 s at 10 fps; a phone moving
# into view is read within a few frames, bench_scan.py's sequences)
UNREAD_HINT_FRAMES = 10
CODE_UNREADABLE = "code_unreadable"

# The deblur retry: defocus sigmas tried (frame pixels) and the Wiener noise-to-signal
# ratio, measured on rendered codes of 1.6-2.4 px per module (bench_qr_envelope.py)
DEBLUR_SIGMAS = (1.0, 1.4)
DEBLUR_NSR = 0.002
DEBLUR_MIN_DARK = 0.42  # the dark share a candidate needs before it is deconvolved


def _unsharp(g: np.ndarray, sigma: float, amount: float = 1.5) -> np.ndarray:
    blurred = cv2.GaussianBlur(g, (0, 0), sigma)
    return cv2.addWeighted(g, 1 + amount, blurred, -amount, 0)


def _offset(symbols: list[Symbol], dx: int, dy: int) -> list[Symbol]:
    """Polygons from region-of-interest pixels back to frame pixels."""
    if not dx and not dy:
        return symbols
    return [
        Symbol(s.kind, s.text, s.raw_bytes, tuple((x + dx, y + dy) for x, y in s.polygon))
        for s in symbols
    ]


def _crop_of(g: np.ndarray, poly: tuple) -> tuple[np.ndarray, int, int, float] | None:
    """The region around a candidate polygon with a margin, at 2x when it is small:
    ``(crop, x0, y0, factor)``; None when too small to read."""
    h, w = g.shape[:2]
    xs, ys = [p[0] for p in poly], [p[1] for p in poly]
    side = max(max(xs) - min(xs), max(ys) - min(ys))
    m = int(0.35 * side) + 8
    x0, y0 = max(0, min(xs) - m), max(0, min(ys) - m)
    x1, y1 = min(w, max(xs) + m), min(h, max(ys) + m)
    crop = g[y0:y1, x0:x1]
    if crop.shape[0] < 16 or crop.shape[1] < 16:
        return None
    f = 2.0 if max(crop.shape) < 500 else 1.0
    if f > 1:
        crop = cv2.resize(crop, None, fx=f, fy=f, interpolation=cv2.INTER_CUBIC)
    return crop, x0, y0, f


def _half_dark(g: np.ndarray, box: tuple[int, int, int, int]) -> bool:
    """Whether the region is as dark as a QR code is (about half its modules dark; the
    Otsu-dark share of a blurred code measured 0.48-0.74) rather than print on paper
    (text, guilloche: 0.11-0.40 on the hard corpus's ID cards, one card region in 16 above):
    the deblur retry, ~6 ms, runs only on the former."""
    x, y, w, h = box
    region = g[y : y + h, x : x + w]
    if region.size == 0:
        return False
    _t, binary = cv2.threshold(region, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return float(np.count_nonzero(binary == 0)) / binary.size >= DEBLUR_MIN_DARK


def _bbox(poly: tuple[tuple[int, int], ...]) -> tuple[int, int, int, int]:
    xs, ys = [p[0] for p in poly], [p[1] for p in poly]
    return min(xs), min(ys), max(xs), max(ys)


def _distinct(polys: list) -> list:
    """Candidate polygons with their centres at least 20 px apart (zxing-cpp reports one
    unreadable code several times)."""
    out: list = []
    centres: list[tuple[float, float]] = []
    for poly in polys:
        if not poly:
            continue
        c = (sum(p[0] for p in poly) / len(poly), sum(p[1] for p in poly) / len(poly))
        if all(abs(c[0] - d[0]) + abs(c[1] - d[1]) >= 20 for d in centres):
            centres.append(c)
            out.append(poly)
    return out


BACK_EVERY = 3  # read attempts with print in view but nothing read, per card-back look


def _back_detector() -> Any:
    from sentinel.scan.cardback import CardBackDetector

    try:
        return CardBackDetector()
    except (OSError, ValueError) as exc:  # the shipped glyph file missing or damaged
        log.warning("card backs will not be recognised: %s", exc)
        return None


class Scanner:
    """A primary decoder, retries on frames where it found nothing, and a fallback.

    ``decode(frame)`` is stateless.  ``scan(frame)`` adds the motion check: a still
    scene is not decoded again (re-checked every ``recheck_frames``): an empty one stays
    empty, and one that showed codes repeats them, so a phone held still stays one
    presentation.
    """

    def __init__(
        self,
        backend: str = "zxing",
        fallback: str | None = "pyzbar",
        *,
        retries: bool = True,
        retry_steps: tuple[str, ...] = (
            "crops",
            "unsharp",
            "upscale",
            "clahe",
            "texture",
            "deblur",
        ),
        motion_threshold: float = 2.0,
        recheck_frames: int = 15,
        roi: tuple[int, int, int, int] | None = None,
        id_reader: Any = None,
        id_every_frames: int = 2,
    ) -> None:
        self.primary: Decoder = BACKENDS[backend]()
        self.fallback: Decoder | None = (
            BACKENDS[fallback]() if fallback and fallback != backend else None
        )
        self.retries = retries
        self.retry_steps = retry_steps
        self.roi = roi
        self.motion = MotionGate(motion_threshold, recheck_frames=recheck_frames)
        self._last: list[Symbol] = []
        self.skipped = 0
        self.decoded = 0
        # sentinel.scan.mrz.IdReader (or anything with read(frame) -> list[Symbol])
        self.id_reader = id_reader
        self.id_every_frames = max(1, id_every_frames)
        self._no_code = 0
        self._id_pending = False
        self.saw_code = False
        self._id_held: list[Symbol] = []  # the document last read, while it stays in view
        self._id_misses = 0
        # ID barcodes without zxing-cpp's own rotation and downscale passes (3.3 -> 0.7 ms
        # CPU per attempt on an empty 640×480 frame, the same reads upright and at 180°);
        # a card held at 90° is read on the next attempt, which turns the frame itself
        self._id_barcodes: Decoder | None = (
            ZxingDecoder(("PDF417", "Code128"), try_rotate=False, try_downscale=False)
            if id_reader is not None
            else None
        )
        self._id_turned = True  # the next ID barcode attempt is upright (it alternates)
        # a hint for the kiosk from the last frame ("card_back": a resident ID card shown
        # back side up), never a symbol: looked for only when the ID reader read nothing
        # but saw print (cardback.py)
        self.hint: str | None = None
        self._unread_frames = 0  # decoded frames in a row with a code seen but not read
        self._boxes_of: np.ndarray | None = None  # the frame _boxes were found in
        self._boxes: list[tuple[int, int, int, int]] = []
        self.back_detector = _back_detector() if id_reader is not None else None
        # a failed read of a card sliding into view is followed by the next attempt: the
        # detector (tens of ms) runs on every BACK_EVERY-th such frame, not each
        self._back_wait = 0

    @classmethod
    def from_config(cls, scan: ScanConfig, camera: CameraConfig | None = None) -> Scanner:
        """The scanner the settings describe (back-ends, retries, motion, ROI, ID reader)."""
        id_reader = None
        if scan.id_documents:
            from sentinel.scan.mrz import IdReader

            try:
                id_reader = IdReader(scan.ocr_engine)
            except (OSError, HardwareError) as exc:  # no OCR-B font / no tesseract
                log.warning("ID documents will not be read: %s", exc)
        roi = tuple(camera.roi) if camera is not None and len(camera.roi) == 4 else None
        return cls(
            scan.backend,
            scan.fallback,
            retries=scan.retries,
            motion_threshold=scan.motion_threshold,
            recheck_frames=scan.motion_recheck_frames,
            roi=roi,  # type: ignore[arg-type]
            id_reader=id_reader,
            id_every_frames=scan.id_every_frames,
        )

    def decode(self, frame: np.ndarray) -> list[Symbol]:
        """All symbols in ``frame`` (any back-end, any retry that finds them)."""
        g = gray(frame)
        self._boxes_of = None  # a source may refill the same buffer: boxes are per call
        found = self.primary.decode(g)
        # whether a QR code is in view (read or not): then no ID document is looked for
        self.saw_code = bool(found) or getattr(self.primary, "saw_candidate", False)
        if found:
            if self.retries and "crops" in self.retry_steps:
                found += self._unread_beside(g, found)
            return found
        if self.retries:
            # zxing-cpp tells when it saw a code it could not read (other back-ends
            # cannot): only then the whole-frame retries; the texture pass looks for codes
            # too small to be seen at all
            found = self._retry(g, saw=getattr(self.primary, "saw_candidate", True))
            self.saw_code = self.saw_code or bool(found)
            if found:
                return found
        if self.fallback is not None:
            found = self.fallback.decode(g)
        return found

    def _retry(self, g: np.ndarray, *, saw: bool = True) -> list[Symbol]:
        # Each step measured in bench_scan.py ("QR options"): crops around the codes
        # zxing-cpp found but could not read, at twice the resolution (small codes); an
        # unsharp mask (motion, focus blur); 1.5x upscaling with it (the smallest modules
        # at 640×480); local contrast equalization (glare, dim light); crops of square
        # textured regions at ~3x, for codes zxing-cpp did not even detect (qr_finder.py).
        candidates = list(getattr(self.primary, "candidates", []))
        for step in self.retry_steps:
            if not saw and step not in ("texture", "deblur"):
                continue
            found = self._RETRY[step](self, g, candidates)
            if found:
                return found
        return []

    def _crops(self, g: np.ndarray, candidates: list) -> list[Symbol]:
        for poly in candidates[:3]:
            cut = _crop_of(g, poly)
            if cut is None:
                continue
            crop, x0, y0, f = cut
            found = self.primary.decode(crop)
            if found:
                return _offset(unscaled(found, f), x0, y0)
        return []

    def _unread_beside(self, g: np.ndarray, found: list[Symbol]) -> list[Symbol]:
        """Codes zxing-cpp saw but could not read beside the ones it read (two codes on one
        screen, a sheet of codes): each distinct candidate outside the read codes, cropped
        at 2x, as is and sharpened.  Costs nothing when every code seen was read."""
        boxes = [_bbox(s.polygon) for s in found if s.polygon]
        texts = {s.text for s in found}
        extra: list[Symbol] = []
        for poly in _distinct(getattr(self.primary, "candidates", []))[:4]:
            cx = sum(p[0] for p in poly) / len(poly)
            cy = sum(p[1] for p in poly) / len(poly)
            if any(x0 <= cx <= x1 and y0 <= cy <= y1 for x0, y0, x1, y1 in boxes):
                continue  # a finder pattern of a code already read
            cut = _crop_of(g, poly)
            if cut is None:
                continue
            crop, x0, y0, f = cut
            got = self.primary.decode(crop) or self.primary.decode(_unsharp(crop, f))
            for sym in _offset(unscaled(got, f), x0, y0):
                if sym.text not in texts:
                    texts.add(sym.text)
                    extra.append(sym)
        return extra

    def _unsharp_step(self, g: np.ndarray, _c: list) -> list[Symbol]:
        return self.primary.decode(_unsharp(g, 1.0))

    def _upscale_step(self, g: np.ndarray, _c: list) -> list[Symbol]:
        if g.shape[0] > 900:
            return []
        up = cv2.resize(g, None, fx=1.5, fy=1.5, interpolation=cv2.INTER_CUBIC)
        return unscaled(self.primary.decode(_unsharp(up, 1.5)), 1.5)

    def _clahe_step(self, g: np.ndarray, _c: list) -> list[Symbol]:
        return self.primary.decode(cv2.createCLAHE(clipLimit=3.0, tileGridSize=(8, 8)).apply(g))

    def _texture_step(self, g: np.ndarray, _c: list) -> list[Symbol]:
        # each crop as is, then strongly sharpened: a defocused or shaken code whose
        # finder patterns zxing-cpp no longer sees (+5 points on the hard corpus's blur
        # frames, docs/scanner.md; a mild unsharp mask alone adds 1)
        for box in self._texture_boxes(g):
            crop, x0, y0, f = crop_around(g, box)
            found = self.primary.decode(crop) or self.primary.decode(_unsharp(crop, 1.5 * f, 2.5))
            if found:
                return _offset(unscaled(found, f), x0, y0)
        return []

    def _texture_boxes(self, g: np.ndarray) -> list[tuple[int, int, int, int]]:
        """The texture pass's candidates for frame ``g``, computed once per frame: the
        deblur retry looks at the same boxes right after the texture step."""
        if self._boxes_of is not g:
            self._boxes_of, self._boxes = g, texture_candidates(g)
        return self._boxes

    def _deblur_step(self, g: np.ndarray, _c: list) -> list[Symbol]:
        # the most textured candidate only, deconvolved at its own resolution for a
        # defocus of 1.0 and 1.4 px, then enlarged as the texture pass does: codes of
        # 1.6-2.4 px per module under a blur no sharpening recovers (docs/scanner.md)
        boxes = self._texture_boxes(g)[:1]  # the most textured (the list is sorted)
        if not boxes or not _half_dark(g, boxes[0]):
            return []
        raw, x0, y0, _f = crop_around(g, boxes[0], max_factor=1.0)
        f = min(4.0, max(1.0, 420 / max(raw.shape[:2])))
        for sigma in DEBLUR_SIGMAS:
            sharp = wiener(raw, sigma, DEBLUR_NSR)
            if f > 1.0:
                sharp = cv2.resize(sharp, None, fx=f, fy=f, interpolation=cv2.INTER_CUBIC)
            found = self.primary.decode(sharp)
            if found:
                return _offset(unscaled(found, f), x0, y0)
        return []

    _RETRY = {
        "crops": _crops,
        "unsharp": _unsharp_step,
        "upscale": _upscale_step,
        "clahe": _clahe_step,
        "texture": _texture_step,
        "deblur": _deblur_step,
    }

    def read_id(self, frame: np.ndarray) -> list[Symbol]:
        """ID documents: PDF417 / Code 128 barcodes, else an MRZ or identity number (OCR);
        only reads that passed every check digit."""
        if self.id_reader is None or self._id_barcodes is None:
            return []
        g = gray(frame)
        found = self._id_barcode_read(g) or self.id_reader.read(g)
        if found or self.back_detector is None or not getattr(self.id_reader, "saw_text", False):
            self._back_wait = 0
        elif self._back_wait > 0:
            self._back_wait -= 1
        else:
            self._back_wait = BACK_EVERY - 1
            self.hint = self.back_detector.detect(g)
        return found

    def _id_barcode_read(self, g: np.ndarray) -> list[Symbol]:
        """PDF417 / Code 128 on ID documents, upright (and upside down) on one attempt, a
        quarter turn on the next; polygons always in frame pixels."""
        assert self._id_barcodes is not None
        self._id_turned = not self._id_turned
        if not self._id_turned:
            return self._id_barcodes.decode(g)
        h = g.shape[0]
        found = self._id_barcodes.decode(cv2.rotate(g, cv2.ROTATE_90_CLOCKWISE))
        # turned clockwise, frame (x, y) lands at (h - 1 - y, x): map each point back
        return [
            Symbol(s.kind, s.text, s.raw_bytes, tuple((y, h - 1 - x) for x, y in s.polygon))
            for s in found
        ]

    def _held_id(self, read: list[Symbol] | None, *, still: bool = False) -> list[Symbol]:
        """A document stays in view between its reads: the last read is repeated on the
        frames with no read attempt (``read`` None) and through ``ID_MISSES`` attempts that
        read nothing (the OCR misses a frame now and then).  Without it a card held for two
        seconds could be two presentations, two decisions (the tracker counts frames)."""
        if read:
            self._id_held, self._id_misses = read, 0
            return read
        if read is not None:
            self._id_misses += 1
            if self._id_misses > ID_MISSES or still:
                self._id_held = []
        return list(self._id_held)

    def scan(self, frame: np.ndarray) -> list[Symbol]:
        """Symbols for one camera frame, skipping the decode on a still, empty scene."""
        ox = oy = 0
        if self.roi:
            ox, oy, w, h = self.roi
            frame = frame[oy : oy + h, ox : ox + w]
        g = gray(frame)
        self.hint = None
        if not self.motion.changed(g):
            # still scene: nothing new to read; a code held still stays in view.  A card
            # that just came to rest is read once now (a steady frame OCRs best).
            self.skipped += 1
            if self._id_pending and (not self._last or self._last == self._id_held):
                self._id_pending = False
                # a still scene reads best: a miss here means the card is gone
                self._last = _offset(self._held_id(self.read_id(g), still=True), ox, oy)
            return list(self._last)
        self.decoded += 1
        found = self.decode(g)
        self._unread_frames = self._unread_frames + 1 if self.saw_code and not found else 0
        if self._unread_frames >= UNREAD_HINT_FRAMES:
            self.hint = CODE_UNREADABLE
        # a code zxing-cpp saw but could not read yet (a phone still moving in): reading
        # it on the next frame matters more than 100+ ms of OCR on this one
        self._id_pending = not found and not self.saw_code and self.id_reader is not None
        if self._id_pending:
            # OCR costs more than a decode: look for a document on every Nth frame only
            self._no_code += 1
            if self._no_code >= self.id_every_frames:
                self._no_code = 0
                self._id_pending = False
                found = self._held_id(self.read_id(g))
            else:
                found = self._held_id(None)
        else:
            self._id_held = []  # a code in view: no document is held
        found = _offset(found, ox, oy)
        self._last = found
        return found

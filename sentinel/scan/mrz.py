"""ID documents from a camera frame: find the machine-readable zone or an identity
number (``mrz_locate``: line by line, any orientation), rectify it (``mrz_strips``), cut
it into lines of the fixed pitch of each layout (TD1 3×30, TD2 2×36, TD3 2×44, GB 11643
1×18), read them (``mrz_ocr`` templates, ``ocrb_net`` network or Tesseract), and hand
back ``Symbol``s that passed every check: all check digits, the composite, ICAO 9303's
document-code and state lists, real dates (``credentials.iddoc``), and no
check-digit-blind rival close to a character of a protected field.  Reads of several
frames vote per character (``fusion``).  Nothing here writes an image to disk.
"""

from __future__ import annotations

import cv2
import numpy as np

from sentinel.errors import CredentialError
from sentinel.scan.mrz_ocr import (  # noqa: F401 - OCRB_FONT, TemplateOCR: public here too
    _LAYOUTS,
    _MASKS,
    _VALUES,
    _WHITELIST,
    OCRB_FONT,
    Alts,
    TemplateOCR,
    TesseractOCR,
    decide_cells,  # noqa: F401 - public here too
    decide_cells_alts,
    split_alts,
)
from sentinel.scan.mrz_strips import (  # noqa: F401 - public here too
    TextLine,
    _level,
    _views,
    crop_block,
    find_text_lines,
    harmonize,
    line_spans,
    split_lines,
)
from sentinel.scan.symbol import Symbol, unscaled

# a candidate reading of a block: text (lines joined by newlines), mean match score,
# ambiguous (a line ran out of the strip), and the close runners-up of the cells that
# decide who the holder is (``_key_cells``; "" elsewhere; check-digit-blind rivals among
# them), one string per character
Read = tuple[str, float, bool, Alts]

# Mean glyph correlation (template engine) under which a block is not worth another view,
# cut or turn: measured on the hard corpus and the video sequences (bench_scan.py), every
# verified read scored at least 0.74, the same zone turned upside down at least 0.51, and
# blurred or unreadable frames at most 0.53.  A block below this is not turned by 180°,
# and its reads do not vote (``fusion``).
UNREADABLE = 0.45
# a scan or photo this small (longer side, pixels) is read at SMALL_UPSCALE: a page
# scanned 250-450 px wide has MRZ characters 6-10 px wide, and the template reader read
# 48 of 80 such scans at 1.5x against 40 of 80 as they are, in the same median time
# (benchmarks/corpus_scan.py's scan_250_450 category, seed 99; 0 wrong numbers either way)
SMALL_SIDE = 500
SMALL_UPSCALE = 1.5


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
        self.saw_text = False  # whether the last read() found any text-like block
        self._template: TemplateOCR | None = None
        self._cnn = None
        if engine == "cnn":
            from sentinel.scan.ocrb_net import CELL_H, CellClassifier, CnnLineReader

            t = TemplateOCR()
            self._cnn = CnnLineReader(CellClassifier(), t.ink_ratio, CELL_H * t.adv_ratio)
        elif engine == "template":
            self._template = TemplateOCR()
        self._tesseract = TesseractOCR() if engine == "tesseract" else None

    def _texts(self, crop: np.ndarray, expect_h: float = 0.0) -> list[Read]:
        """Candidate readings of the block: (text, mean match score, ambiguous)."""
        if self._tesseract is not None:
            text = self._tesseract.read(cv2.resize(crop, None, fx=2, fy=2))
            return [(text, 0.0, False, [""] * len(text))]
        if self._cnn is not None:
            return self._cnn_texts(crop, expect_h)
        out = []
        for grey, ink in _views(crop):
            out.extend(self._template_texts(grey, ink, expect_h))
        return out

    def _template_texts(self, crop: np.ndarray, ink: np.ndarray, expect_h: float) -> list[Read]:
        assert self._template is not None
        spans = line_spans(crop, ink, expect_h)[-5:]
        strips: dict[tuple[int, ...], np.ndarray] = {}
        cache: dict[tuple[tuple[int, ...], int], tuple[np.ndarray, float]] = {}

        def prepared(span: tuple[int, ...], chars: int) -> tuple[np.ndarray, float]:
            if (span, chars) not in cache:
                assert self._template is not None
                if span not in strips:
                    strips[span] = _level(crop, ink, *span)
                cache[(span, chars)] = self._template.prepare(strips[span], chars)
            return cache[(span, chars)]

        out = []
        # every run of 3, 2 or 1 consecutive lines, the bottom ones first (the MRZ is
        # the bottom of a card; the grown crop may hold other print above it)
        for count in (3, 2, 1):
            for start in range(len(spans) - count, -1, -1):
                run = harmonize(spans[start : start + count])
                if count > 1 and not _same_width(run):
                    continue
                for layout in _LAYOUTS[count]:
                    if count > 1 and not _fits(run, len(layout[0])):
                        continue
                    reads = [
                        self._template.read_cells(prepared(sp, len(cl)), cl)
                        for sp, cl in zip(run, layout, strict=True)
                    ]
                    out.append(_joined(reads, layout))
        return out

    def _cnn_texts(self, crop: np.ndarray, expect_h: float) -> list[Read]:
        out = []
        for grey, ink in _views(crop):
            out.extend(self._cnn_view(grey, ink, expect_h))
        return out

    def _cnn_view(self, crop: np.ndarray, ink: np.ndarray, expect_h: float) -> list[Read]:
        assert self._cnn is not None
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
                    reads = [decide_cells_alts(p, cl) for p, cl in zip(ps, layout, strict=True)]  # type: ignore[arg-type]
                    out.append(_joined(reads, layout))
        return out

    def read(self, frame: np.ndarray) -> list[Symbol]:
        """The first verified MRZ or identity number in ``frame`` (any orientation).

        With ``fuse`` the best unverified zone read of each frame also votes
        (``fusion.MrzVotes``), and a fused zone that passes every check is returned."""
        gray = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        if max(gray.shape[:2]) < SMALL_SIDE:
            f = SMALL_UPSCALE
            big = cv2.resize(gray, None, fx=f, fy=f, interpolation=cv2.INTER_CUBIC)
            return unscaled(self._read(big), f)
        return self._read(gray)

    def _read(self, gray: np.ndarray) -> list[Symbol]:
        from sentinel.scan.mrz_locate import find_blocks

        best: tuple[float, str, object] | None = None
        # line-by-line candidates first, then the merged-block ones (clean, large cards)
        blocks = find_blocks(gray)[: self.max_blocks] + find_text_lines(gray)[:1]
        self.saw_text = bool(blocks)  # print in view: the scanner may look for a card back
        for block in blocks:
            crop = crop_block(gray, block)
            if crop.size == 0:
                continue
            top = 0.0
            for upright in (crop, cv2.rotate(crop, cv2.ROTATE_180)):
                texts = self._texts(upright, getattr(block, "line_h", 0.0))
                found = self._verified(texts, block)
                if found:
                    if self.votes is not None:
                        self.votes.reset()
                    return found
                top = max([top] + [score for _, score, _, _ in texts])
                for text, score, _, _ in texts:
                    if "\n" in text and score >= UNREADABLE and (best is None or score > best[0]):
                        best = (score, text, block)
                if top < UNREADABLE and self._template is not None:
                    break  # the zone turned upside down still matches better than this
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

    def _verified(self, texts: list[Read], block: object) -> list[Symbol]:
        """The read of ``texts`` (one block, every view and cut) that passes every check,
        has no rival (``_rival_read``), and that no other passing read of the block
        contradicts: three confident misreads once cancelled out in a number's check
        digit and its composite, while another view of the same block read it right."""
        chosen: tuple[str, str] | None = None
        keys = set()
        for text, _, ambiguous, alts in texts:
            for kind, candidate in _candidates(text):
                key = _key(kind, candidate)
                if key is None:
                    continue
                keys.add(key)
                if chosen is not None or ambiguous:  # fusion may still settle it
                    continue
                if candidate != text and any(split_alts(a)[0] for a in alts):
                    continue  # a part of the read: its runners-up do not line up
                if _rival_read(candidate, alts, key):
                    continue  # another holder's zone reads almost as well
                chosen = (kind, candidate)
        if chosen is None or len(keys) > 1:
            return []
        kind, candidate = chosen
        return [Symbol(kind, candidate, candidate.encode("ascii"), _poly(block))]


def _key(kind: str, text: str) -> tuple | None:
    """Who the holder is by a read that passes every check (None: it does not)."""
    from sentinel.credentials import iddoc

    try:
        doc = iddoc.parse_mrz(text) if kind == "MRZ" else iddoc.parse_cn_id(text)
    except CredentialError:
        return None
    # the document code's first letter is its category; the second is the issuer's choice
    # (ICAO 9303-3 §4.2.2) and keys nothing (``statusset.normalize_document``): reads that
    # differ only there are the same document, not rivals
    return (doc.doc_type[:1], doc.issuing_country, doc.number, doc.nationality,
            doc.birth_date, doc.expiry)  # fmt: skip


_MAX_UNSURE = 12  # cells with close runners-up: past this, one frame decides nothing


def _rival_read(text: str, alts: Alts, key: tuple) -> bool:
    """Whether replacing one to three of the cells by close runners-up, or one by a close
    runner-up and another by a far look-alike (``mrz_ocr.FAR``), gives another read that
    passes every check (ICAO's 7-3-1 digits miss errors that cancel out, GB 11643's
    MOD 11-2 any two): then this frame cannot tell the two documents apart."""
    from itertools import combinations, product

    split = [split_alts(a) for a in alts]
    cells = [(i, near) for i, (near, _) in enumerate(split) if near]
    if len(cells) > _MAX_UNSURE:
        return True
    kind = "MRZ" if "\n" in text else "ID_NUMBER"

    def another(group: tuple[tuple[int, str], ...]) -> bool:
        for chars in product(*(a for _, a in group)):
            other = list(text)
            for (i, _), ch in zip(group, chars, strict=True):
                other[i] = ch
            got = _key(kind, "".join(other))
            if got is not None and got != key:
                return True
        return False

    if any(another(g) for size in (1, 2, 3) for g in combinations(cells, size)):
        return True
    # pairs with a far look-alike (``mrz_ocr._WIDE_MARGIN``) in one cell or both
    either = [(i, near + far) for i, (near, far) in enumerate(split) if far]
    either += [(i, near) for i, (near, far) in enumerate(split) if near and not far]
    return any(
        another(g) for g in combinations(sorted(either), 2) if any(split[i][1] for i, _ in g)
    )


def _key_cells(layout: tuple[str, ...]) -> list[bool]:
    """Per character of the joined lines (newlines included): whether it tells whose
    document this is (code, state, number, dates, check digits; not the names)."""
    out: list[bool] = []
    for i, line in enumerate(layout):
        if i:
            out.append(False)  # the newline
        if len(layout) == 3:
            out.extend([i < 2] * len(line))  # TD1: names on line 3
        elif len(layout) == 2:
            out.extend([i == 1 or k < 5 for k in range(len(line))])
        else:
            out.extend([True] * len(line))
    return out


def _joined(reads: list[tuple[str, float, bool, Alts]], layout: tuple[str, ...]) -> Read:
    text = "\n".join(r[0] for r in reads)
    score = float(np.mean([r[1] for r in reads]))
    if any(
        len(r[0]) != len(cl) or len(r[3]) != len(cl) for r, cl in zip(reads, layout, strict=True)
    ):
        return text, score, True, [""] * len(text)  # a line ran out of the strip
    alts: Alts = []
    for k, r in enumerate(reads):
        alts.extend([""] * (k > 0) + r[3])
    keep = _key_cells(layout)
    # a check-digit-blind rival close to a cell (each line's flag, r[2]) is not a refusal
    # by itself: it is among that cell's runners-up, and ``_rival_read`` refuses the read
    # when putting it in gives another document that passes every check (a filler inside
    # a number, say, gives none).  Measured: 80 scans, seeds 123 and 99, 49 -> 50 and
    # 48 -> 49 read, 0 wrong; id_corpus(8) seeds 15 and 31 unchanged.
    return text, score, False, [a if m else "" for a, m in zip(alts, keep, strict=True)]


def _poly(b: object) -> tuple[tuple[int, int], ...]:
    box = cv2.boxPoints((b.center, b.size, b.angle_deg))  # type: ignore[attr-defined]
    return tuple((int(x), int(y)) for x, y in box)


def _same_width(run: list[tuple[int, ...]]) -> bool:
    widths = [r - left for _, _, left, r in run]
    return max(widths) <= 1.08 * min(widths)


def _fits(run: list[tuple[int, ...]], chars: int) -> bool:
    """Whether lines of ``chars`` characters at this height are plausible: Debian's OCR-B
    has a pitch 0.9 of its glyph height, issuers print 0.8-1.3 times that ratio (ICAO
    9303 fixes only the pitch), and blur and strip margins move the measured height:
    0.45–1.35 allowed.  The upper bound was 1.1: 0 of 12 cards printed 1.25 times as
    wide were read (``corpus_scan``'s print_aspect: 75 of 80 against 60)."""
    width = float(np.median([r - left for _, _, left, r in run]))
    height = float(np.median([b - a for a, b, _, _ in run]))
    return 0.45 * height <= width / chars <= 1.35 * height


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

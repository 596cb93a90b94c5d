"""Make the glyph templates ``sentinel/scan/cardback.py`` looks for on the back of a
Chinese resident identity card: the printed words 居民身份证, 中华人民共和国, 签发机关 and
有效期限, one bitmap per character, rendered from Noto Sans CJK SC (regular and bold).

Shipped in the package (``sentinel/scan/models/cardback_glyphs.npz``, ~20 KB), so the
device needs no CJK font.  The test corpus renders card backs with another font
(WenQuanYi Micro Hei), so the detector is never measured on the very glyphs it matches.
Regenerate (only when the words change):

    apt-get install fonts-noto-cjk
    .venv/bin/python scripts/cardback_glyphs.py

Noto Sans CJK is under the SIL Open Font License 1.1 (``sentinel/web/static/fonts/OFL.txt``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sentinel.scan.cardback import GLYPH_H, GLYPH_W, MODEL, WORDS  # noqa: E402

FACES = {
    "regular": Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
    "bold": Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc"),
}
SC_INDEX = 2  # "Noto Sans CJK SC" in the collection
EM = 96


def _band(font: ImageFont.FreeTypeFont, chars: str) -> tuple[int, int]:
    """The rows every character's ink falls within (one band for all: a printed line's
    ink height, which the detector scales its line crops to)."""
    tops, bottoms = [], []
    for ch in chars:
        x0, y0, x1, y1 = font.getbbox(ch)
        del x0, x1
        tops.append(y0)
        bottoms.append(y1)
    return min(tops), max(bottoms)


def render(font: ImageFont.FreeTypeFont, ch: str, band: tuple[int, int]) -> np.ndarray:
    img = Image.new("L", (EM * 2, EM * 2), 255)
    ImageDraw.Draw(img).text((EM // 2, 0), ch, fill=0, font=font)
    a = np.asarray(img)
    cols = np.flatnonzero((a < 128).any(axis=0))
    # the ink centred in a box one em wide (a CJK character's advance): every template
    # has the same size, and the detector matches them all in one matrix product
    mid = (cols[0] + cols[-1] + 1) // 2
    box = np.full((band[1] - band[0], EM), 255, np.uint8)
    x0 = max(0, mid - EM // 2)
    part = a[band[0] : band[1], x0 : x0 + EM]
    box[:, : part.shape[1]] = part
    glyph = box
    size = (GLYPH_W, GLYPH_H)
    return np.asarray(Image.fromarray(glyph).resize(size, Image.LANCZOS))


def main() -> int:
    chars = sorted(set("".join(WORDS.values())))
    arrays: dict[str, np.ndarray] = {}
    for face, path in FACES.items():
        font = ImageFont.truetype(str(path), EM, index=SC_INDEX)
        band = _band(font, "".join(chars))
        for ch in chars:
            arrays[f"{face}_{ord(ch):x}"] = render(font, ch, band)
    MODEL.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(MODEL, **arrays)
    print(f"{len(arrays)} glyphs -> {MODEL} ({MODEL.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Make the pages' font: a WOFF2 subset of Noto Sans CJK SC with every character the
kiosk and the other pages show (every template and the kiosk script, the reason
messages, the override reasons, the strings in sentinel/web/*.py), plus printable ASCII
and Latin-1.

Shipped in the package (``sentinel/web/static/fonts/``), so the kiosk renders Chinese on
a device without any CJK font installed (Raspberry Pi OS Lite has none) and without
network.  Regenerate after adding a message (tests/test_kiosk_font.py fails until then):

    apt-get install fonts-noto-cjk && pip install fonttools brotli
    .venv/bin/python scripts/font_subset.py

Noto Sans CJK is under the SIL Open Font License 1.1, which allows subsetting and
redistribution (the licence travels with the files: OFL.txt).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

OUT = ROOT / "sentinel" / "web" / "static" / "fonts"
SOURCES = {
    "regular": Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
    "bold": Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc"),
}
BASE = "".join(chr(c) for c in range(0x20, 0x7F)) + "".join(chr(c) for c in range(0xA0, 0x100))
EXTRA = "✓×▣⚠●·—–…“”‘’←→"  # symbols the kiosk draws


def kiosk_text() -> str:
    """Every character the pages can show (sorted, unique)."""
    from sentinel.config import VenueConfig
    from sentinel.reasons import MESSAGES
    from sentinel.web import app

    parts = [BASE, EXTRA, VenueConfig().name_zh]
    parts += [zh + en for en, zh in MESSAGES.values()]
    parts += [zh + en for en, zh in app.OVERRIDE_REASONS.values()]
    web = ROOT / "sentinel" / "web"
    for f in [*web.glob("templates/*.html"), web / "static" / "kiosk.js", *web.glob("*.py")]:
        parts.append(f.read_text(encoding="utf-8"))
    text = "".join(parts)
    # the CJK characters and punctuation in those sources (and everything in BASE/EXTRA)
    cjk = re.findall(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]", text)
    return "".join(sorted(set(BASE + EXTRA + "".join(cjk))))


def sc_index(path: Path) -> int:
    from fontTools.ttLib import TTCollection

    for i, font in enumerate(TTCollection(str(path)).fonts):
        if "CJK SC" in font["name"].getDebugName(1):
            return i
    raise SystemExit(f"{path}: no Noto Sans CJK SC face")


def main() -> int:
    from fontTools import subset

    text = kiosk_text()
    OUT.mkdir(parents=True, exist_ok=True)
    for weight, src in SOURCES.items():
        if not src.exists():
            raise SystemExit(f"{src} missing: apt-get install fonts-noto-cjk")
        opts = subset.Options()
        opts.flavor = "woff2"
        opts.font_number = sc_index(src)
        opts.hinting = False  # hinting is for small sizes on old rasterisers: not here
        opts.name_IDs = ["*"]  # keep the copyright and licence names
        opts.layout_features = ["*"]
        font = subset.load_font(str(src), opts)
        sub = subset.Subsetter(opts)
        sub.populate(text=text)
        sub.subset(font)
        dest = OUT / f"sentinel-sans-{weight}.woff2"
        subset.save_font(font, str(dest), opts)
        print(f"{dest.relative_to(ROOT)}: {dest.stat().st_size:,} bytes")

    print(f"{len(text)} characters ({sum(1 for c in text if ord(c) > 0x2FFF)} CJK)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

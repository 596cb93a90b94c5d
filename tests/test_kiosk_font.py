"""The shipped kiosk font (a Noto Sans CJK SC subset) has a glyph for every character
the kiosk can show: every reason message, override reason, template and script string.
Adding a message with a new character fails here until scripts/font_subset.py is run."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from fontTools.ttLib import TTFont

ROOT = Path(__file__).resolve().parent.parent
FONTS = ROOT / "sentinel" / "web" / "static" / "fonts"


def _kiosk_text() -> str:
    spec = importlib.util.spec_from_file_location("font_subset", ROOT / "scripts/font_subset.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    text: str = mod.kiosk_text()
    return text


@pytest.mark.parametrize("weight", ["regular", "bold"])
def test_every_kiosk_character_has_a_glyph(weight: str) -> None:
    path = FONTS / f"sentinel-sans-{weight}.woff2"
    cmap = TTFont(path).getBestCmap()
    text = _kiosk_text()
    assert "验" in text and "码" in text and "请" in text  # the collector sees the messages
    missing = sorted({c for c in text if ord(c) not in cmap and not c.isspace()})
    assert not missing, f"{path.name} lacks {''.join(missing)!r}: run scripts/font_subset.py"
    assert path.stat().st_size < 200_000  # a subset, not the 16 MB font


def test_the_licence_travels_with_the_font() -> None:
    text = (FONTS / "OFL.txt").read_text(encoding="utf-8")
    assert "SIL OPEN FONT LICENSE Version 1.1" in text

"""Server-side SVG charts and the CSV export (no JavaScript library, nothing remote)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import datetime
from html import escape
from typing import Any

from sentinel.web.data import COLUMNS

_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def bar_chart(
    buckets: list[tuple[datetime, int]], bucket: str, *, width: int = 720, height: int = 220
) -> str:
    """An SVG column chart of refusals per hour or day; labels are escaped text."""
    pad_l, pad_b, pad_t = 36, 28, 12
    n = max(len(buckets), 1)
    top = max((c for _, c in buckets), default=0) or 1
    plot_w, plot_h = width - pad_l - 8, height - pad_b - pad_t
    bar_w = plot_w / n
    fmt = "%H:00" if bucket == "hour" else "%m-%d"
    every = max(1, n // 12)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="refusals per {escape(bucket)}">',
        f'<line x1="{pad_l}" y1="{pad_t + plot_h}" x2="{width - 8}" y2="{pad_t + plot_h}" '
        'stroke="#555"/>',
        f'<text x="{pad_l - 4}" y="{pad_t + 10}" text-anchor="end" font-size="11">{top}</text>',
        f'<text x="{pad_l - 4}" y="{pad_t + plot_h}" text-anchor="end" font-size="11">0</text>',
    ]
    for i, (t, c) in enumerate(buckets):
        h = plot_h * c / top
        x = pad_l + i * bar_w
        label = escape(t.strftime(fmt))
        parts.append(
            f'<rect class="bar" x="{x + 1:.1f}" y="{pad_t + plot_h - h:.1f}" '
            f'width="{max(bar_w - 2, 1):.1f}" height="{h:.1f}" fill="#b3261e">'
            f"<title>{label}: {c}</title></rect>"
        )
        if i % every == 0:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{height - 8}" text-anchor="middle" '
                f'font-size="11">{label}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def defuse(value: Any) -> str:
    """A CSV cell that spreadsheets will not run as a formula (OWASP CSV injection)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_PREFIXES) else text


def to_csv(rows: Iterable[dict[str, Any]], messages: dict[str, tuple[str, str]]) -> str:
    """The export: one line per refused entry, minimized columns plus the reason text."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow([*COLUMNS, "message_en", "message_zh"])
    for r in rows:
        en, zh = messages.get(str(r["reason"]), ("", ""))
        w.writerow([defuse(r[c]) for c in COLUMNS] + [defuse(en), defuse(zh)])
    return out.getvalue()

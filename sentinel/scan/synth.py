"""Synthetic camera frames: a QR code (or any image) on a lit background, degraded.

For the demo, the tests and the benchmarks; deterministic for a given seed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np


def render_qr(text: str, module_px: int = 6) -> np.ndarray:
    """A QR code (with quiet zone) as a grayscale image, ``module_px`` pixels per module."""
    enc = cv2.QRCodeEncoder.create(cv2.QRCodeEncoder.Params())
    img = enc.encode(text)
    if img is None or img.size == 0:
        raise ValueError("text does not fit in a QR code")
    h, w = img.shape[:2]
    return cv2.resize(img, (w * module_px, h * module_px), interpolation=cv2.INTER_NEAREST)


@dataclass(frozen=True, slots=True)
class Degrade:
    angle_deg: float = 0.0
    keystone: float = 0.0  # 0..0.3: fraction by which the top edge narrows
    blur_px: float = 0.0  # Gaussian sigma
    noise: float = 0.0  # Gaussian noise sigma, in grey levels
    jpeg_quality: int = 0  # 0: no JPEG round trip
    brightness: float = 1.0  # < 1 for dim light
    glare: float = 0.0  # 0..1 strength of a bright elliptical patch
    fill: float = 0.55  # fraction of the frame height the code fills


def blank_frame(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A plausible empty scene: a gradient wall with a little texture."""
    rng = np.random.default_rng(seed)
    y = np.linspace(90, 150, height, dtype=np.float32)[:, None]
    x = np.linspace(0, 25, width, dtype=np.float32)[None, :]
    base = y + x + rng.standard_normal((height, width), dtype=np.float32) * 3
    return cv2.cvtColor(np.clip(base, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)


def place(
    code: np.ndarray, width: int, height: int, d: Degrade = Degrade(), seed: int = 0
) -> np.ndarray:
    """Put ``code`` (grayscale) into a ``width``×``height`` BGR frame with degradations."""
    return place_image(code, width, height, d, seed)


def place_image(
    image: np.ndarray, width: int, height: int, d: Degrade = Degrade(), seed: int = 0
) -> np.ndarray:
    """Like ``place`` for any grayscale image (a card, a page): ``d.fill`` is the fraction
    of the frame height its height fills (less when it would not fit the width)."""
    rng = np.random.default_rng(seed)
    frame = blank_frame(width, height, seed).astype(np.float32)
    ih, iw = image.shape[:2]
    side_h = max(16, int(height * d.fill))
    side_w = max(16, int(side_h * iw / ih))
    if side_w > 0.95 * width:
        side_w = int(0.95 * width)
        side_h = max(16, int(side_w * ih / iw))
    tile = cv2.resize(image, (side_w, side_h), interpolation=cv2.INTER_AREA).astype(np.float32)
    side = max(side_w, side_h)
    # a phone screen or a card, slightly off-centre
    cx = width / 2 + rng.uniform(-0.1, 0.1) * (width - side_w)
    cy = height / 2 + rng.uniform(-0.05, 0.05) * height
    src = np.float32([[0, 0], [side_w, 0], [side_w, side_h], [0, side_h]])
    hw, hh = side_w / 2, side_h / 2
    k = d.keystone * hw
    dst = np.float32([[-hw + k, -hh], [hw - k, -hh], [hw, hh], [-hw, hh]])
    a = np.deg2rad(d.angle_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]], dtype=np.float32)
    dst = dst @ rot.T + np.float32([cx, cy])
    m = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
    warped = cv2.warpPerspective(tile, m, (width, height), flags=cv2.INTER_LINEAR, borderValue=0)
    mask = cv2.warpPerspective(np.ones_like(tile), m, (width, height), borderValue=0)
    g = frame[..., 0] * (1 - mask) + warped * mask
    if d.glare > 0:
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        gx, gy = cx + rng.uniform(-0.2, 0.2) * side, cy + rng.uniform(-0.2, 0.2) * side
        blob = np.exp(-(((xx - gx) / (side * 0.18)) ** 2 + ((yy - gy) / (side * 0.12)) ** 2))
        g = g + d.glare * 160 * blob
    g = g * d.brightness
    if d.blur_px > 0:
        g = cv2.GaussianBlur(g, (0, 0), d.blur_px)
    if d.noise > 0:
        g = g + rng.normal(0, d.noise, g.shape).astype(np.float32)
    out = cv2.cvtColor(np.clip(g, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    if d.jpeg_quality:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, d.jpeg_quality])
        if ok:
            out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return out


# --- camera-condition corpus (tests and benchmarks) ----------------------------------

CONDITIONS = (
    "clean", "rotate", "keystone", "blur", "strong_blur", "noise", "jpeg", "dim", "glare", "mixed",
)  # fmt: skip


def degrade_for(condition: str, rng: np.random.Generator) -> Degrade:
    """A random ``Degrade`` of one named condition (codes fill 45–70% of the height)."""
    fill = float(rng.uniform(0.45, 0.7))
    angle = float(rng.uniform(-30, 30))
    u = rng.uniform
    table = {
        "clean": Degrade(fill=fill),
        "rotate": Degrade(angle_deg=angle, fill=fill),
        "keystone": Degrade(angle_deg=float(u(-5, 5)), keystone=float(u(0.1, 0.25)), fill=fill),
        "blur": Degrade(angle_deg=float(u(-10, 10)), blur_px=float(u(0.6, 1.2)), fill=fill),
        # 1.2–1.6 px on 2–3 px modules: beyond every back-end alone (the retries' case)
        "strong_blur": Degrade(
            angle_deg=float(u(-20, 20)), blur_px=float(u(1.2, 1.6)), noise=3.0, fill=fill
        ),
        "noise": Degrade(angle_deg=float(u(-10, 10)), noise=float(u(8, 16)), fill=fill),
        "jpeg": Degrade(angle_deg=float(u(-10, 10)), jpeg_quality=int(u(20, 45)), fill=fill),
        "dim": Degrade(
            angle_deg=float(u(-10, 10)), brightness=float(u(0.15, 0.3)), noise=2.0, fill=fill
        ),
        "glare": Degrade(angle_deg=float(u(-10, 10)), glare=float(u(0.8, 1.3)), fill=fill),
        "mixed": Degrade(
            angle_deg=angle,
            keystone=float(u(0.05, 0.2)),
            blur_px=float(u(0.5, 0.9)),
            noise=6.0,
            jpeg_quality=50,
            brightness=float(u(0.35, 1.0)),
            glare=float(u(0.0, 0.6)),
            fill=fill,
        ),
    }
    return table[condition]


def dgc_texts(root: str | Path) -> list[str]:
    """The unique QR texts (``PREFIX``) of the EU DCC test vectors under ``root``."""
    texts: set[str] = set()
    for p in sorted(Path(root).rglob("*.json")):
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (ValueError, OSError):
            continue
        t = data.get("PREFIX") if isinstance(data, dict) else None
        if isinstance(t, str) and t:
            texts.add(t)
    return sorted(texts)


# --- ID documents ------------------------------------------------------------------

OCRB_FONT = "/usr/share/fonts/opentype/ocr-b/OCRB.otf"
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ALNUM = _LETTERS + "0123456789"
_SURNAMES = ("ERIKSSON", "MUELLER", "ZHANG", "OKAFOR", "DUBOIS", "NAKAMURA", "SILVA", "NOVAK")
_GIVEN = ("ANNA", "MARIA", "WEI", "JONAS", "CHIDI", "LEA", "HIROSHI", "ANA", "PETR", "LI")


def _field(text: str, n: int) -> str:
    return (text + "<" * n)[:n]


def _yymmdd(rng: np.random.Generator, y0: int, y1: int) -> str:
    y, m, d = int(rng.integers(y0, y1)), int(rng.integers(1, 13)), int(rng.integers(1, 29))
    return f"{y:02d}{m:02d}{d:02d}"


def make_mrz(fmt: str, rng: np.random.Generator) -> str:
    """A random but valid MRZ ("TD1", "TD2", "TD3", "MRV-A" or "MRV-B"), check digits
    from the project."""
    from sentinel.credentials.icao_codes import ISO_3166_ALPHA3
    from sentinel.credentials.iddoc import check_digit as cd

    country = str(rng.choice(sorted(ISO_3166_ALPHA3)))
    number = "".join(rng.choice(list(_ALNUM), int(rng.integers(6, 10))))
    num9 = _field(number, 9)
    born = _yymmdd(rng, 40, 99)
    expiry = _yymmdd(rng, 26, 36)
    sex = str(rng.choice(["M", "F", "<"]))
    surname = str(rng.choice(_SURNAMES))
    given = "<".join(rng.choice(_GIVEN, int(rng.integers(1, 3))))
    if fmt == "TD1":
        opt1 = _field("", 15)
        l1 = "I<" + country + num9 + cd(num9) + opt1
        opt2 = _field("".join(rng.choice(list("0123456789"), 4)), 11)
        l2 = born + cd(born) + sex + expiry + cd(expiry) + country + opt2
        l2 += cd(l1[5:30] + l2[0:7] + l2[8:15] + l2[18:29])
        l3 = _field(surname + "<<" + given, 30)
        return "\n".join((l1, l2, l3))
    width = 36 if fmt in ("TD2", "MRV-B") else 44
    code = {"TD3": "P<", "TD2": "I<"}.get(fmt, "V<")
    l1 = _field(code + country + surname + "<<" + given, width)
    if fmt.startswith("MRV"):
        # ICAO 9303-7: optional data (often a visa or application number) and no
        # personal-number or composite check digit
        nationality = str(rng.choice(sorted(ISO_3166_ALPHA3)))
        body = num9 + cd(num9) + nationality + born + cd(born) + sex + expiry + cd(expiry)
        extra = "".join(rng.choice(list(_ALNUM), int(rng.integers(0, width - 28))))
        return "\n".join((l1, _field(body + extra, width)))
    if fmt == "TD3":
        personal = _field("".join(rng.choice(list(_ALNUM), int(rng.integers(0, 10)))), 14)
        pcd = cd(personal) if personal.strip("<") else "<"
        body = num9 + cd(num9) + country + born + cd(born) + sex + expiry + cd(expiry)
        body += personal + pcd
    else:
        body = num9 + cd(num9) + country + born + cd(born) + sex + expiry + cd(expiry)
        body += _field("", 7)
    comp = cd(body[0:10] + body[13:20] + body[21:])
    return "\n".join((l1, body + comp))


def make_cn_id(rng: np.random.Generator) -> str:
    """A random but valid 18-character resident identity number."""
    from sentinel.credentials.iddoc import cn_check_char

    region = str(rng.choice(["110105", "310104", "440305", "510107", "330106", "420102"]))
    body = (
        region
        + f"{int(rng.integers(1950, 2005))}{int(rng.integers(1, 13)):02d}"
        + f"{int(rng.integers(1, 29)):02d}{int(rng.integers(0, 1000)):03d}"
    )
    return body + cn_check_char(body)


def _card_background(w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 215 + 20 * np.sin(xx / w * 3 + float(rng.uniform(0, 6))) * np.cos(yy / h * 2)
    # guilloche-like fine lines, faint as on real security printing
    for _ in range(6):
        f, ph = float(rng.uniform(0.02, 0.06)), float(rng.uniform(0, 6))
        base -= 10 * (np.sin(xx * f + 8 * np.sin(yy * f * 0.7 + ph)) > 0.97)
    return np.clip(base, 0, 255)


def render_id_card(mrz_or_number: str, seed: int = 0, *, glyph_aspect: float = 1.0) -> np.ndarray:
    """A grayscale card-like image (10 px/mm) carrying an MRZ or an 18-digit number.

    TD1/TD2/TD3 sizes follow ICAO 9303 (85.6×54, 105×74, 125×88 mm), visas 9303-7's
    (MRV-A 120×80, MRV-B 105×74 mm: a ``V`` zone); the MRZ is set in OCR-B at 2.54 mm
    pitch, 6.4 mm above the bottom edge per line block.  ``glyph_aspect`` above 1 prints
    the zone's glyphs that much wider for their height (below 1, narrower) at the same
    pitch: issuers' printers and OCR-B cuts differ from Debian's font in this ratio.
    """
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    lines = mrz_or_number.split("\n")
    is_mrz = len(lines) > 1
    width_chars = len(lines[0]) if is_mrz else 30
    size_mm = {30: (856, 540), 36: (1050, 740), 44: (1250, 880)}[width_chars]
    if is_mrz and width_chars == 44 and lines[0].startswith("V"):
        size_mm = (1200, 800)  # MRV-A, ICAO 9303-7 §2
    w, h = size_mm
    img = Image.fromarray(_card_background(w, h, rng).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    font = ImageFont.truetype(OCRB_FONT, 35)  # 25.4 px advance: 2.54 mm at 10 px/mm
    small = ImageFont.truetype(OCRB_FONT, 26)
    draw.text((40, 30), "REPUBLIC OF UTOPIA  IDENTITY", fill=60, font=small)
    # a photo: a darker rounded block
    draw.rounded_rectangle((40, 90, 40 + int(w * 0.25), 90 + int(h * 0.45)), 12, fill=120)
    for i, label in enumerate(("SURNAME", "GIVEN NAMES", "DATE OF BIRTH")):
        y = 100 + i * 60
        draw.text((int(w * 0.33), y), label, fill=90, font=small)
        word = "".join(rng.choice(list(_LETTERS), int(rng.integers(4, 9))))
        draw.text((int(w * 0.33), y + 26), word, fill=30, font=small)
    if is_mrz:
        pitch = 52  # line pitch ~5 mm
        top = h - 40 - pitch * len(lines)
        x0 = (w - int(font.getlength(lines[0]))) // 2
        if glyph_aspect == 1.0:
            for i, ln in enumerate(lines):
                draw.text((x0, top + i * pitch), ln, fill=20, font=font)
        else:
            _draw_aspect(img, lines, (x0, top), pitch, glyph_aspect, font.getlength(lines[0]))
    else:
        # as on the card: the label far left, the number on the same line
        draw.text((40, h - 100), "ID NO.", fill=90, font=small)
        draw.text((int(w * 0.33), h - 110), mrz_or_number, fill=20, font=font)
    return np.asarray(img)


def _draw_aspect(
    img: object, lines: list[str], at: tuple[int, int], pitch: int, aspect: float, width: float
) -> None:
    """The zone's lines drawn ``aspect`` times as wide for their height, ``width`` wide."""
    from PIL import Image, ImageChops, ImageDraw, ImageFont

    font = ImageFont.truetype(OCRB_FONT, max(8, round(35 / aspect)))
    layer = Image.new("L", (int(font.getlength(lines[0])) + 4, pitch * len(lines)), 255)
    draw = ImageDraw.Draw(layer)
    for i, ln in enumerate(lines):
        draw.text((0, i * pitch), ln, fill=20, font=font)
    layer = layer.resize((int(width) + 4, layer.height), Image.Resampling.LANCZOS)
    box = (at[0], at[1], at[0] + layer.width, at[1] + layer.height)
    region = img.crop(box)  # type: ignore[attr-defined]
    img.paste(ImageChops.darker(region, layer), box)  # type: ignore[attr-defined]


ID_CONDITIONS = ("clean", "rotate", "keystone", "blur", "noise", "jpeg", "dim", "glare")


def id_degrade_for(condition: str, rng: np.random.Generator) -> Degrade:
    """A random ``Degrade`` for a held-up ID document (fills 70–85% of the height)."""
    fill = float(rng.uniform(0.7, 0.85))
    u = rng.uniform
    table = {
        "clean": Degrade(fill=fill),
        "rotate": Degrade(angle_deg=float(u(-12, 12)), fill=fill),
        "keystone": Degrade(angle_deg=float(u(-3, 3)), keystone=float(u(0.04, 0.1)), fill=fill),
        "blur": Degrade(angle_deg=float(u(-4, 4)), blur_px=float(u(0.6, 1.0)), fill=fill),
        "noise": Degrade(angle_deg=float(u(-4, 4)), noise=float(u(5, 10)), fill=fill),
        "jpeg": Degrade(angle_deg=float(u(-4, 4)), jpeg_quality=int(u(45, 70)), fill=fill),
        "dim": Degrade(angle_deg=float(u(-4, 4)), brightness=float(u(0.45, 0.6)), fill=fill),
        "glare": Degrade(angle_deg=float(u(-4, 4)), glare=float(u(0.3, 0.5)), fill=fill),
    }
    return table[condition]


# --- Chinese resident identity cards, both sides ---------------------------------------

# a CJK font for rendering (Debian fonts-wqy-microhei, test-only): not the font the
# card-back detector's templates come from (Noto Sans CJK), so the corpus does not
# measure it on its own glyphs
CJK_FONT = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"
_AUTHORITIES = (
    "北京市公安局朝阳分局", "上海市公安局浦东分局", "深圳市公安局南山分局",
    "成都市公安局武侯分局", "杭州市公安局西湖分局", "武汉市公安局江岸分局",
)  # fmt: skip
_CN_NAMES = ("张伟", "王芳", "李娜", "刘洋", "陈静", "杨磊", "赵敏", "黄勇")


def _spaced(draw: object, xy: tuple[int, int], text: str, font: object, gap: int, fill: int):
    x, y = xy
    for ch in text:
        draw.text((x, y), ch, fill=fill, font=font)  # type: ignore[attr-defined]
        x += int(font.getlength(ch)) + gap  # type: ignore[attr-defined]


def _emblem(draw: object, cx: int, cy: int, r: int, fill: int) -> None:
    """A national-emblem-like roundel: a ring of wheat, a gate, five stars (grey)."""
    d = draw
    d.ellipse((cx - r, cy - r, cx + r, cy + r), outline=fill, width=max(3, r // 6))  # type: ignore[attr-defined]
    d.ellipse((cx - r * 0.72, cy - r * 0.72, cx + r * 0.72, cy + r * 0.72), fill=fill + 60)  # type: ignore[attr-defined]
    for k in range(5):
        sx = cx + (k - 2) * r * 0.22
        sy = cy - r * (0.42 if k == 2 else 0.3)
        s = r * (0.14 if k == 2 else 0.07)
        pts = [
            (
                sx + s * np.cos(np.pi / 2 + i * 4 * np.pi / 5),
                sy - s * np.sin(np.pi / 2 + i * 4 * np.pi / 5),
            )
            for i in range(5)
        ]
        d.polygon(pts, fill=fill - 30)  # type: ignore[attr-defined]
    d.rectangle((cx - r * 0.5, cy, cx + r * 0.5, cy + r * 0.3), fill=fill - 20)  # type: ignore[attr-defined]
    for k in range(5):
        x = cx - r * 0.4 + k * r * 0.2
        d.rectangle((x - 4, cy + r * 0.12, x + 4, cy + r * 0.3), fill=fill + 60)  # type: ignore[attr-defined]
    for a in np.linspace(0.6, 2.5, 9):  # wheat ears along the ring
        for side in (-1, 1):
            x = cx + side * r * 0.86 * np.cos(a - np.pi / 2 + np.pi / 2)
            y = cy + r * 0.86 * np.sin(a)
            d.ellipse((x - 6, y - 9, x + 6, y + 9), fill=fill)  # type: ignore[attr-defined]


def render_cn_back(seed: int = 0) -> np.ndarray:
    """The back of a resident identity card (grey, 10 px/mm, ID-1 85.6×54 mm): the
    emblem, 中华人民共和国 / 居民身份证, 签发机关 and 有效期限 with values; no number."""
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    w, h = 856, 540
    img = Image.fromarray(_card_background(w, h, rng).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    _emblem(draw, 165, 165, int(rng.integers(95, 110)), 90)
    state = ImageFont.truetype(CJK_FONT, int(rng.integers(40, 48)))
    title = ImageFont.truetype(CJK_FONT, int(rng.integers(66, 78)))
    small = ImageFont.truetype(CJK_FONT, int(rng.integers(28, 33)))
    _spaced(draw, (330, 70), "中华人民共和国", state, int(rng.integers(8, 20)), 40)
    _spaced(draw, (318, 160), "居民身份证", title, int(rng.integers(14, 26)), 30)
    y0 = int(rng.integers(370, 395))
    start = int(rng.integers(2005, 2024))
    m, d = int(rng.integers(1, 13)), int(rng.integers(1, 29))
    valid = f"{start}.{m:02d}.{d:02d}-{start + 20}.{m:02d}.{d:02d}"
    for i, (label, value) in enumerate(
        (("签发机关", str(rng.choice(_AUTHORITIES))), ("有效期限", valid))
    ):
        y = y0 + i * 70
        _spaced(draw, (150, y), label, small, 6, 60)
        draw.text((320, y), value, fill=30, font=small)
    return np.asarray(img)


def render_cn_front(number: str, seed: int = 0) -> np.ndarray:
    """The front of a resident identity card as printed (grey, 10 px/mm): 姓名, 性别,
    民族, 出生, 住址 with values, the photo on the right, 公民身份号码 and the number."""
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    w, h = 856, 540
    img = Image.fromarray(_card_background(w, h, rng).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    small = ImageFont.truetype(CJK_FONT, 30)
    value = ImageFont.truetype(CJK_FONT, 34)
    born = f"{number[6:10]} 年 {int(number[10:12])} 月 {int(number[12:14])} 日"
    rows = (
        ("姓名", str(rng.choice(_CN_NAMES))),
        ("性别", "男" if int(number[16]) % 2 else "女"),
        ("民族", "汉"),
        ("出生", born),
        ("住址", str(rng.choice(_AUTHORITIES))[:3] + "某某路88号"),
    )
    for i, (label, text) in enumerate(rows):
        y = 60 + i * 62
        _spaced(draw, (60, y), label, small, 14, 70)
        draw.text((170, y - 2), text, fill=25, font=value)
    draw.rounded_rectangle((560, 70, 800, 370), 10, fill=120)  # the photo
    _spaced(draw, (60, 445), "公民身份号码", small, 4, 70)
    font = ImageFont.truetype(OCRB_FONT, 35)
    draw.text((290, 440), number, fill=20, font=font)
    return np.asarray(img)

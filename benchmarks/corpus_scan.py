"""A seeded evaluation corpus for the scanner, harder than the door: ID documents on
guilloche and photo backgrounds, low-resolution scans, phone photos with perspective,
glare, blur and JPEG, 90°/180° rotations; QR codes on dark-mode phones, green
health-code screens, screens with moiré, curved paper, small in a large frame; and short
video sequences of a card or phone moving into view.

Everything is made here from a seed (no image is stored in the repository):

    .venv/bin/python benchmarks/corpus_scan.py --out /tmp/corpus --per 6   # write PNGs

``bench_scan.py`` uses the functions directly.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sentinel.scan import synth  # noqa: E402


@dataclass(frozen=True, slots=True)
class Sample:
    category: str
    kind: str  # "MRZ", "ID_NUMBER", "QRCODE", "CARD_BACK"
    truth: str
    frame: np.ndarray  # BGR


# --- backgrounds and printing ------------------------------------------------------------


def photo_background(w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """A cluttered scene behind the document: a table, a hand, shelves (grey, 0-255)."""
    small = rng.uniform(40, 220, (max(2, h // 90), max(2, w // 90))).astype(np.float32)
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    for _ in range(int(rng.integers(6, 16))):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(20, w // 2)), y0 + int(rng.integers(20, h // 2))
        val = float(rng.uniform(10, 245))
        if rng.random() < 0.5:
            cv2.rectangle(img, (x0, y0), (x1, y1), val, -1)
        else:
            cv2.ellipse(img, (x0, y0), ((x1 - x0) // 2, (y1 - y0) // 2), 0, 0, 360, val, -1)
    # wood grain / fabric texture, and some print-like strokes (newspaper under the card)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img += 12 * np.sin(xx * float(rng.uniform(0.02, 0.2)) + 3 * np.sin(yy * 0.01))
    ink = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(0, 5))):
        y = int(rng.integers(0, h))
        x = int(rng.integers(0, w // 2))
        cv2.putText(ink, "LOREM IPSUM 2024", (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.9, 255, 2)
    img = np.where(ink > 0, 20.0, img).astype(np.float32)
    img = cv2.GaussianBlur(img, (0, 0), 1.2)
    return np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.float32)


def guilloche(w: int, h: int, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Security-print rosettes and waves as darkening (0 = none) over the whole page,
    the machine-readable zone included."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(4, 9))):
        f = float(rng.uniform(0.015, 0.05))
        ph = float(rng.uniform(0, 6.3))
        amp = float(rng.uniform(4, 14))
        wave = np.sin(xx * f + amp * np.sin(yy * f * 0.6 + ph))
        out += (np.abs(wave) < 0.06).astype(np.float32)
    cx, cy = float(rng.uniform(0, w)), float(rng.uniform(0, h))
    r = np.hypot(xx - cx, yy - cy)
    theta = np.arctan2(yy - cy, xx - cx)
    out += (np.abs(np.sin(r * 0.08 + 6 * np.sin(theta * 12))) < 0.05).astype(np.float32)
    return np.clip(out, 0, 1) * strength


def document(truth: str, rng: np.random.Generator, seed: int, aspect: float = 1.0) -> np.ndarray:
    """An ID card / passport data page carrying ``truth`` (an MRZ or an 18-digit number),
    with strong guilloche, a tinted background and the holder's photo (grey); the zone's
    glyphs ``aspect`` times as wide for their height as Debian's OCR-B."""
    card = synth.render_id_card(truth, seed=seed, glyph_aspect=aspect).astype(np.float32)
    h, w = card.shape
    tint = float(rng.uniform(150, 235))  # tinted security paper, darker than white
    card = card * (tint / 235.0)
    card -= guilloche(w, h, rng, float(rng.uniform(25, 70)))
    # photo: a face-like texture in the photo box
    ph = photo_background(int(w * 0.25), int(h * 0.45), rng)
    y0, x0 = 90, 40
    card[y0 : y0 + ph.shape[0], x0 : x0 + ph.shape[1]] = ph * 0.8
    return np.clip(card, 0, 255)


# --- degradations -------------------------------------------------------------------------


def _glare(img: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    h, w = img.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    gx, gy = float(rng.uniform(0.2, 0.8)) * w, float(rng.uniform(0.3, 0.9)) * h
    sx, sy = float(rng.uniform(0.08, 0.2)) * w, float(rng.uniform(0.05, 0.15)) * h
    blob = np.exp(-(((xx - gx) / sx) ** 2 + ((yy - gy) / sy) ** 2))
    return img + strength * 200 * blob


def _motion_blur(img: np.ndarray, length: float, angle_deg: float) -> np.ndarray:
    n = max(1, int(round(length)))
    k = np.zeros((2 * n + 1, 2 * n + 1), np.float32)
    k[n, :] = 1.0
    m = cv2.getRotationMatrix2D((n, n), angle_deg, 1.0)
    k = cv2.warpAffine(k, m, k.shape[::-1])
    return cv2.filter2D(img, -1, k / max(k.sum(), 1e-6))


def _jpeg(img: np.ndarray, q: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", np.clip(img, 0, 255).astype(np.uint8), [1, q])
    return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE).astype(np.float32) if ok else img


def photograph(
    doc: np.ndarray,
    rng: np.random.Generator,
    *,
    size: tuple[int, int] = (1280, 720),
    fill: float = 0.75,
    angle: float = 0.0,
    perspective: float = 0.0,
    glare: float = 0.0,
    blur: float = 0.0,
    motion: float = 0.0,
    noise: float = 3.0,
    jpeg: int = 0,
    brightness: float = 1.0,
    center: tuple[float, float] | None = None,
    background: np.ndarray | None = None,
) -> np.ndarray:
    """``doc`` (grey) photographed: placed on a photo background with rotation, random
    corner perspective, then glare, defocus / motion blur, noise, JPEG; BGR out."""
    w, h = size
    bg = photo_background(w, h, rng) if background is None else background.copy()
    dh, dw = doc.shape
    scale = fill * h / dh
    if dw * scale > 0.98 * w:
        scale = 0.98 * w / dw
    tw, th = dw * scale, dh * scale
    cx, cy = center or (w / 2 + rng.uniform(-0.08, 0.08) * w, h / 2 + rng.uniform(-0.06, 0.06) * h)
    corners = np.float32(
        [[-tw / 2, -th / 2], [tw / 2, -th / 2], [tw / 2, th / 2], [-tw / 2, th / 2]]
    )
    corners += rng.uniform(-perspective, perspective, (4, 2)).astype(np.float32) * [tw, th]
    a = np.deg2rad(angle)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]], np.float32)
    dst = corners @ rot.T + np.float32([cx, cy])
    src = np.float32([[0, 0], [dw, 0], [dw, dh], [0, dh]])
    m = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
    warped = cv2.warpPerspective(doc, m, (w, h), flags=cv2.INTER_AREA, borderValue=0)
    mask = cv2.warpPerspective(np.ones_like(doc), m, (w, h), flags=cv2.INTER_LINEAR)
    g = bg * (1 - mask) + warped * mask
    if glare:
        g = _glare(g, rng, glare)
    g = g * brightness
    if blur:
        g = cv2.GaussianBlur(g, (0, 0), blur)
    if motion:
        g = _motion_blur(g, motion, float(rng.uniform(-20, 20)))
    g = g + rng.normal(0, noise, g.shape).astype(np.float32)
    if jpeg:
        g = _jpeg(g, jpeg)
    return cv2.cvtColor(np.clip(g, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)


def scan(doc: np.ndarray, rng: np.random.Generator, width: int) -> np.ndarray:
    """A flat-bed or copier scan of the page at ``width`` pixels: a small skew, faded
    contrast, speckle, JPEG."""
    dh, dw = doc.shape
    img = cv2.resize(doc, (width, int(dh * width / dw)), interpolation=cv2.INTER_AREA)
    pad = 12
    img = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=245)
    hh, ww = img.shape
    m = cv2.getRotationMatrix2D((ww / 2, hh / 2), float(rng.uniform(-2.5, 2.5)), 1.0)
    img = cv2.warpAffine(img, m, (ww, hh), flags=cv2.INTER_LINEAR, borderValue=245)
    fade = float(rng.uniform(0.45, 0.8))
    img = 255 - (255 - img) * fade  # faded toner / washed-out scan
    img = img + rng.normal(0, float(rng.uniform(2, 6)), img.shape)
    img = _jpeg(img, int(rng.integers(35, 75)))
    return cv2.cvtColor(np.clip(img, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)


# --- ID documents -------------------------------------------------------------------------

MRZ_CATEGORIES = (
    "td3_photo", "td1_photo", "td2_photo", "small_in_frame", "scan_250_450", "rotated_90",
    "rotated_180", "perspective", "glare", "blur", "jpeg_noise", "dim", "mrv_photo",
    "print_aspect",
)  # fmt: skip
# print_aspect: the zone's glyphs printed 0.8-1.3 times as wide for their height as the
# font the reader's templates come from, at ICAO's 2.54 mm pitch (issuers' printers and
# OCR-B cuts differ; a reader that knows only its own font's ratio read 0 of 12 cards
# printed 1.25 times as wide)
ASPECTS = (0.8, 1.3)


def _truth(kind: str, rng: np.random.Generator) -> str:
    return synth.make_cn_id(rng) if kind == "CN" else synth.make_mrz(kind, rng)


def id_sample(category: str, kind: str, rng: np.random.Generator, seed: int) -> Sample:
    """One document (``kind`` "TD1", "TD2", "TD3", "MRV-A", "MRV-B" or "CN") under
    ``category``."""
    truth = _truth(kind, rng)
    aspect = float(rng.uniform(*ASPECTS)) if category == "print_aspect" else 1.0
    doc = document(truth, rng, seed, aspect)
    frame = degraded(category, doc, rng)
    return Sample(category, "ID_NUMBER" if kind == "CN" else "MRZ", truth, frame)


def degraded(category: str, doc: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``doc`` (a grey page) photographed or scanned under ``category`` (BGR)."""
    u = rng.uniform
    angle = float(u(-8, 8))
    if category == "scan_250_450":
        frame = scan(doc, rng, int(rng.integers(250, 451)))
    elif category in ("rotated_90", "rotated_180"):
        rot = (
            cv2.ROTATE_180
            if category == "rotated_180"
            else (cv2.ROTATE_90_CLOCKWISE if rng.random() < 0.5 else cv2.ROTATE_90_COUNTERCLOCKWISE)
        )
        rdoc = cv2.rotate(doc, rot)
        fill = 0.92 if category == "rotated_90" else 0.75
        frame = photograph(rdoc, rng, fill=fill, angle=angle, noise=4, jpeg=70)
    else:
        opts: dict = {
            "td3_photo": {"fill": float(u(0.7, 0.85)), "angle": angle},
            "td1_photo": {"fill": float(u(0.7, 0.85)), "angle": angle},
            "td2_photo": {"fill": float(u(0.7, 0.85)), "angle": angle},
            "mrv_photo": {"fill": float(u(0.7, 0.85)), "angle": angle},
            "small_in_frame": {"fill": float(u(0.38, 0.5)), "angle": angle, "jpeg": 80},
            "perspective": {"fill": 0.75, "angle": angle, "perspective": float(u(0.04, 0.08))},
            "glare": {"fill": 0.75, "angle": angle, "glare": float(u(0.6, 1.1))},
            "blur": {
                "fill": 0.8,
                "angle": angle,
                "blur": float(u(0.8, 1.5)),
                "motion": float(u(0, 3)),
            },
            "jpeg_noise": {
                "fill": 0.75,
                "angle": angle,
                "noise": float(u(8, 14)),
                "jpeg": int(u(25, 45)),
            },
            "dim": {"fill": 0.75, "angle": angle, "brightness": float(u(0.3, 0.5)), "noise": 5},
        }["td1_photo" if category == "print_aspect" else category]  # no extra draw: the
        # dict draws every entry's numbers, so a new entry would re-roll every sample
        frame = photograph(doc, rng, **opts)
    return frame


def id_corpus(per_category: int, seed: int = 15) -> Iterator[Sample]:
    """``per_category`` documents in each category, formats in turn (TD1, TD2, TD3 and
    Chinese identity numbers; the *_photo categories are their own format, visas
    MRV-A and MRV-B in turn; appended last, so the other categories' samples stay
    the same for a seed)."""
    rng = np.random.default_rng(seed)
    for ci, cat in enumerate(MRZ_CATEGORIES):
        for i in range(per_category):
            kind = {"td1_photo": "TD1", "td2_photo": "TD2", "td3_photo": "TD3"}.get(
                cat, ("TD1", "TD3", "TD2", "CN")[i % 4]
            )
            if cat == "mrv_photo":
                kind = ("MRV-A", "MRV-B")[i % 2]
            yield id_sample(cat, kind, rng, seed=ci * 1000 + i)


# --- Chinese resident identity cards shown back side up --------------------------------

# the ID categories but the per-format ones ("photo": a plain phone photo)
CARD_CATEGORIES = ("photo",) + MRZ_CATEGORIES[3 : MRZ_CATEGORIES.index("mrv_photo")]


def _printed(card: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    tint = float(rng.uniform(150, 235))
    h, w = card.shape
    return card.astype(np.float32) * (tint / 235.0) - guilloche(
        w, h, rng, float(rng.uniform(25, 70))
    )


def back_document(rng: np.random.Generator, seed: int) -> np.ndarray:
    """The back of a resident identity card: emblem, title, authority and validity."""
    return np.clip(_printed(synth.render_cn_back(seed), rng), 0, 255)


def front_document(number: str, rng: np.random.Generator, seed: int) -> np.ndarray:
    """The front as printed (Chinese labels, the photo on the right, the number)."""
    card = _printed(synth.render_cn_front(number, seed), rng)
    ph = photo_background(240, 300, rng)
    card[70:370, 560:800] = ph * 0.8
    return np.clip(card, 0, 255)


def cardback_corpus(per_category: int, seed: int = 16) -> Iterator[Sample]:
    """Per category, ``per_category`` card backs (kind "CARD_BACK") and as many fronts
    of the same cards' kind ("ID_NUMBER", the hard negatives: 公民身份号码 shares three
    characters with 居民身份证), under the ID documents' degradations."""
    rng = np.random.default_rng(seed)
    for ci, cat in enumerate(CARD_CATEGORIES):
        for i in range(per_category):
            s = 5000 + ci * 1000 + i
            back = degraded("td1_photo" if cat == "photo" else cat, back_document(rng, s), rng)
            yield Sample(cat, "CARD_BACK", "", back)
            number = synth.make_cn_id(rng)
            front = front_document(number, rng, s)
            yield Sample(
                cat,
                "ID_NUMBER",
                number,
                degraded("td1_photo" if cat == "photo" else cat, front, rng),
            )


# --- QR codes -----------------------------------------------------------------------------

QR_CATEGORIES = (
    "phone_clean", "dark_mode", "green_app", "inverted_print", "small_in_frame", "moire",
    "curved_paper", "glare", "blur", "jpeg_noise",
)  # fmt: skip


def _phone(code: np.ndarray, rng: np.random.Generator, dark: bool, green: bool) -> np.ndarray:
    """A phone screen showing ``code``: light UI, dark mode (white modules on near-black),
    or a health-code app (white modules on a green card)."""
    side = code.shape[0]
    h, w = int(side * 2.0), int(side * 1.15)
    bg = 30.0 if dark else 95.0 if green else 245.0
    screen = np.full((h, w), bg, np.float32)
    y0, x0 = int(h * 0.3), (w - side) // 2
    if dark or green:
        inv = 255 - code
        fg = 235.0
        screen[y0 : y0 + side, x0 : x0 + side] = np.where(inv > 128, fg, bg)
    else:
        screen[y0 : y0 + side, x0 : x0 + side] = code
    ink = np.zeros((h, w), np.uint8)
    cv2.putText(ink, "HEALTH CODE", (x0, y0 // 2), cv2.FONT_HERSHEY_SIMPLEX, side / 250, 255, 2)
    screen[ink > 0] = 200 if dark or green else 40
    # the phone body around the screen
    return cv2.copyMakeBorder(screen, 20, 30, 12, 12, cv2.BORDER_CONSTANT, value=15)


def _moire(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    f = float(rng.uniform(0.6, 1.1))
    a = float(rng.uniform(0, 3.14))
    pattern = np.sin((xx * np.cos(a) + yy * np.sin(a)) * f) * np.sin(yy * f * 1.03)
    return img * (1 - 0.18 * (pattern > 0))


def _curve(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Paper bent around a vertical axis (a cylinder): columns compressed toward the edges
    and shifted vertically."""
    m = img.shape[0] // 6  # room for the bend
    img = cv2.copyMakeBorder(img, m, m, m // 2, m // 2, cv2.BORDER_CONSTANT, value=235)
    h, w = img.shape
    k = float(rng.uniform(0.01, 0.035))
    bend = float(rng.uniform(0.4, 0.75))  # half the arc, radians
    xs = np.linspace(-1, 1, w, dtype=np.float32)
    src_x = (np.arcsin(np.clip(xs * np.sin(bend), -1, 1)) / bend + 1) / 2 * (w - 1)
    map_x = np.tile(src_x, (h, 1))
    map_y = np.arange(h, dtype=np.float32)[:, None] - k * h * (1 - np.cos(xs * bend))[None, :]
    return cv2.remap(
        img, map_x.astype(np.float32), map_y.astype(np.float32), cv2.INTER_LINEAR, borderValue=235
    )


def qr_sample(category: str, text: str, rng: np.random.Generator, size: tuple[int, int]) -> Sample:
    u = rng.uniform
    code = synth.render_qr(text, module_px=6).astype(np.float32)
    angle = float(u(-25, 25))
    if category in ("dark_mode", "green_app"):
        img = _phone(code, rng, dark=category == "dark_mode", green=category == "green_app")
        frame = photograph(
            img, rng, size=size, fill=float(u(0.55, 0.8)), angle=angle, perspective=0.03
        )
    elif category == "inverted_print":
        img = cv2.copyMakeBorder(255 - code, 30, 30, 30, 30, cv2.BORDER_CONSTANT, value=20)
        frame = photograph(img, rng, size=size, fill=float(u(0.4, 0.6)), angle=angle)
    elif category == "small_in_frame":
        frame = photograph(code, rng, size=size, fill=float(u(0.14, 0.22)), angle=angle, jpeg=80)
    elif category == "moire":
        img = _moire(_phone(code, rng, False, False), rng)
        frame = photograph(img, rng, size=size, fill=0.75, angle=angle, blur=0.6)
    elif category == "curved_paper":
        frame = photograph(
            _curve(code, rng), rng, size=size, fill=float(u(0.4, 0.6)), angle=angle * 0.5
        )
    else:
        opts: dict = {
            "phone_clean": {"fill": float(u(0.35, 0.6)), "angle": angle},
            "glare": {"fill": 0.5, "angle": angle, "glare": float(u(0.7, 1.2))},
            "blur": {
                "fill": 0.5,
                "angle": angle,
                "blur": float(u(0.8, 1.4)),
                "motion": float(u(0, 3)),
            },
            "jpeg_noise": {
                "fill": 0.5,
                "angle": angle,
                "noise": float(u(8, 14)),
                "jpeg": int(u(25, 45)),
            },
        }[category]
        frame = photograph(
            _phone(code, rng, False, False) if category == "phone_clean" else code,
            rng,
            size=size,
            **opts,
        )
    return Sample(category, "QRCODE", text, frame)


def qr_corpus(
    texts: list[str], per_category: int, size: tuple[int, int], seed: int = 15
) -> Iterator[Sample]:
    rng = np.random.default_rng(seed + size[0])
    k = 0
    for cat in QR_CATEGORIES:
        for _ in range(per_category):
            yield qr_sample(cat, texts[k % len(texts)], rng, size)
            k += 1


# --- video sequences ----------------------------------------------------------------------


def sequence(
    kind: str,
    rng: np.random.Generator,
    seed: int,
    *,
    frames: int = 24,
    size: tuple[int, int] = (1280, 720),
) -> tuple[str, list[np.ndarray], int]:
    """(truth, frames, index of the first frame in which the document is wholly visible):
    a card (or a phone with ``kind`` "QR") slides in from one edge over ~8 frames with
    motion blur, then is held with a little hand shake (30 fps)."""
    if kind == "QR":
        truth = "HC1:" + "".join(rng.choice(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"), 300))
        doc = _phone(synth.render_qr(truth, module_px=5).astype(np.float32), rng, False, False)
        fill = 0.6
    else:
        truth = _truth(kind, rng)
        doc = document(truth, rng, seed)
        fill = 0.75
    w, h = size
    bg = photo_background(w, h, rng)
    dh, dw = doc.shape
    scale = min(fill * h / dh, 0.98 * w / dw)
    tw = dw * scale
    end = (w / 2 + float(rng.uniform(-40, 40)), h / 2 + float(rng.uniform(-20, 20)))
    start = (-tw / 2 - 40, end[1] + float(rng.uniform(-60, 60)))
    move = 8
    out, first_visible = [], -1
    for i in range(frames):
        t = min(1.0, i / move)
        ease = 1 - (1 - t) ** 2
        cx = start[0] + (end[0] - start[0]) * ease
        cy = start[1] + (end[1] - start[1]) * ease + float(rng.normal(0, 1.5))
        speed = abs(end[0] - start[0]) * 2 * (1 - t) / move if t < 1 else 0.0
        shake = float(rng.normal(0, 0.6))
        frame = photograph(
            doc, rng, size=size, fill=fill, angle=float(rng.uniform(-3, 3)),
            center=(cx + shake, cy), motion=min(speed * 0.25, 12) + 0.3, noise=3, jpeg=85,
            background=bg,
        )  # fmt: skip
        if first_visible < 0 and cx - tw / 2 >= 0:
            first_visible = i
        out.append(frame)
    return truth, out, max(first_visible, 0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--per", type=int, default=4, help="samples per category")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for i, s in enumerate(id_corpus(args.per)):
        cv2.imwrite(str(args.out / f"id-{s.category}-{i:03d}.png"), s.frame)
    texts = ["HC1:EXAMPLE-" + str(i) * 40 for i in range(10)]
    for i, s in enumerate(qr_corpus(texts, args.per, (1280, 720))):
        cv2.imwrite(str(args.out / f"qr-{s.category}-{i:03d}.png"), s.frame)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

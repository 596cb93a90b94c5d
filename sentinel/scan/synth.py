"""Synthetic camera frames: a QR code (or any image) on a lit background, degraded.

For the demo, the tests and the benchmarks; deterministic for a given seed.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    base = y + x + rng.normal(0, 3, (height, width)).astype(np.float32)
    return cv2.cvtColor(np.clip(base, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)


def place(
    code: np.ndarray, width: int, height: int, d: Degrade = Degrade(), seed: int = 0
) -> np.ndarray:
    """Put ``code`` (grayscale) into a ``width``×``height`` BGR frame with degradations."""
    rng = np.random.default_rng(seed)
    frame = blank_frame(width, height, seed).astype(np.float32)
    side = max(16, int(height * d.fill))
    tile = cv2.resize(code, (side, side), interpolation=cv2.INTER_AREA).astype(np.float32)
    # a phone screen: the code on a white card, slightly off-centre
    cx = width / 2 + rng.uniform(-0.1, 0.1) * width
    cy = height / 2 + rng.uniform(-0.05, 0.05) * height
    src = np.float32([[0, 0], [side, 0], [side, side], [0, side]])
    half = side / 2
    k = d.keystone * half
    dst = np.float32([[-half + k, -half], [half - k, -half], [half, half], [-half, half]])
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

"""Wiener deconvolution of a small crop: the last retry for a defocused QR code.

A fixed-focus door camera sees a phone held too close as a Gaussian-like defocus blur.
Once the blur's sigma approaches the module size, zxing-cpp's binarizers (and an unsharp
mask, which only steepens edges that are still there) lose the modules; dividing the
crop's spectrum by the blur's transfer function, damped where that function is small
(Wiener, with a constant noise-to-signal ratio), brings them back as long as the
contrast left is above the noise.  Measured in ``benchmarks/bench_qr_envelope.py``.

Only crops are deconvolved (a candidate region at most a few hundred pixels square, one
``cv2.dft`` each), never whole frames, and only after every cheaper pass failed.
"""

from __future__ import annotations

import cv2
import numpy as np


def gaussian_otf(shape: tuple[int, int], sigma: float) -> np.ndarray:
    """The transfer function of a Gaussian blur of ``sigma`` pixels on a ``shape`` image,
    sampled at the frequencies of an unshifted DFT (a Gaussian's OTF is real)."""
    h, w = shape
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[None, :]
    otf = np.exp(-2.0 * (np.pi * sigma) ** 2 * (fx**2 + fy**2)).astype(np.float32)
    return otf


def wiener(g: np.ndarray, sigma: float, nsr: float = 0.005) -> np.ndarray:
    """``g`` (uint8, 2-D) deconvolved from a Gaussian blur of ``sigma`` pixels with the
    noise-to-signal ratio ``nsr``; uint8 out, same shape.  Edges are mirrored first so the
    transform's wrap-around does not ring into the crop."""
    if g.ndim != 2 or min(g.shape) < 8 or sigma <= 0:
        return g
    pad = int(3 * sigma) + 2
    f = cv2.copyMakeBorder(g, pad, pad, pad, pad, cv2.BORDER_REFLECT).astype(np.float32)
    f /= 255.0
    spec = cv2.dft(f, flags=cv2.DFT_COMPLEX_OUTPUT)
    otf = gaussian_otf(f.shape, sigma)
    gain = otf / (otf * otf + nsr)  # a real OTF: conj(H) / (|H|^2 + k) is real too
    spec *= gain[:, :, None]
    out = cv2.idft(spec, flags=cv2.DFT_SCALE | cv2.DFT_REAL_OUTPUT)
    out = out[pad:-pad, pad:-pad]
    return np.clip(out * 255.0, 0, 255).astype(np.uint8)

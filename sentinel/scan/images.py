"""One bounded way to load an image file (``sentinel scan``, ``sentinel check``, image
directories as a frame source).

An image file is untrusted input: a 1 MB PNG can declare 32000×32000 pixels (3 GB once
decoded) and a FIFO named ``code.png`` blocks a plain ``open`` for ever.  So the file is
opened without blocking, must be a regular file of at most ``MAX_FILE_BYTES``, and its
header dimensions (read by Pillow, which parses headers lazily) must stay within
``MAX_PIXELS`` before OpenCV decodes a single pixel.
"""

from __future__ import annotations

import os
import stat
import warnings
from io import BytesIO
from pathlib import Path

import cv2
import numpy as np

from sentinel.errors import HardwareError

# A 48-megapixel phone photo is the largest thing a person will hand over; decoded as BGR
# that is ~150 MB, still fine on a 2 GB Pi.  Larger files are refused, not shrunk.
MAX_PIXELS = 50_000_000
MAX_FILE_BYTES = 64 * 1024 * 1024


class ImageRefused(HardwareError):
    """The file is not an image this device will decode (why is in the message)."""


def _read_regular(path: Path, max_bytes: int) -> bytes:
    try:
        # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise ImageRefused(f"{path}: cannot open ({exc.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ImageRefused(f"{path}: not a regular file")
        if st.st_size > max_bytes:
            raise ImageRefused(f"{path}: larger than {max_bytes} bytes")
        chunks, total = [], 0
        while total <= max_bytes:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > max_bytes:  # grew while being read
            raise ImageRefused(f"{path}: larger than {max_bytes} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)


def header_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the image header alone; ``ImageRefused`` if there is none."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # we apply our own, lower, pixel cap below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(BytesIO(data)) as im:
                return im.size
    except Image.DecompressionBombError:  # Pillow's own cap, far above ours
        raise ImageRefused(f"more pixels than the {MAX_PIXELS} allowed") from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise ImageRefused("not a readable image") from None


def load_image(
    path: str | Path,
    *,
    grayscale: bool = False,
    max_pixels: int = MAX_PIXELS,
    max_bytes: int = MAX_FILE_BYTES,
) -> np.ndarray:
    """The decoded image (BGR, or grayscale), or ``ImageRefused`` naming why not."""
    p = Path(path)
    data = _read_regular(p, max_bytes)
    try:
        w, h = header_size(data)
    except ImageRefused as exc:
        raise ImageRefused(f"{p}: {exc}") from None
    if w <= 0 or h <= 0 or w * h > max_pixels:
        raise ImageRefused(f"{p}: {w}×{h}: more pixels than the {max_pixels} allowed")
    flags = cv2.IMREAD_GRAYSCALE if grayscale else cv2.IMREAD_COLOR
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error:
        img = None
    if img is None or img.shape[0] * img.shape[1] > max_pixels:
        raise ImageRefused(f"{p}: not a readable image")
    return img

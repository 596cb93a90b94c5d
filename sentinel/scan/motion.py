"""A cheap "something changed" check: frame difference on a tiny downscaled copy.

Downscaling with area averaging (INTER_AREA) over square blocks of whole pixels (8×8 at
640×480, 16×16 at 1280×720: about 80 blocks across) also averages sensor noise away, so a
still scene measures well under one grey level while a hand or a phone entering the view
measures tens.  Whole-pixel blocks keep OpenCV on its integer-ratio path: a 640×480 frame
squeezed to 80×45 (blocks of 8 × 10.67 pixels) took 0.55 ms, 80×60 takes about 0.15 ms.
"""

from __future__ import annotations

import cv2
import numpy as np

_ACROSS = 80  # blocks across the tiny copy


def tiny(gray: np.ndarray) -> np.ndarray:
    """The frame averaged over square blocks of ``width // 80`` whole pixels (the few
    rows and columns past the last whole block are left out)."""
    h, w = gray.shape[:2]
    block = max(1, w // _ACROSS)
    bw, bh = max(1, w // block), max(1, h // block)
    return cv2.resize(gray[: bh * block, : bw * block], (bw, bh), interpolation=cv2.INTER_AREA)


class MotionGate:
    """``changed(gray)`` is True when the scene differs from the last frame looked at.

    ``threshold`` is the mean absolute difference in grey levels on the tiny copy; a
    still scene is still reported as changed every ``recheck_frames`` frames, so a slow
    drift (clouds, lamps warming up) cannot hide a code forever.
    """

    def __init__(self, threshold: float = 2.0, *, recheck_frames: int = 15) -> None:
        self.threshold = threshold
        self.recheck_frames = max(1, recheck_frames)
        self._ref: np.ndarray | None = None
        self._still = 0
        self.last_diff = 0.0

    def changed(self, gray: np.ndarray) -> bool:
        small = tiny(gray)
        if self._ref is None or self._ref.shape != small.shape:
            self._ref = small
            return True
        self.last_diff = float(cv2.norm(small, self._ref, cv2.NORM_L1)) / small.size
        self._ref = small
        if self.last_diff > self.threshold:
            self._still = 0
            return True
        self._still += 1
        if self._still >= self.recheck_frames:
            self._still = 0
            return True
        return False

    def reset(self) -> None:
        self._ref = None
        self._still = 0

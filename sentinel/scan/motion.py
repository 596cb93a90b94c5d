"""A cheap "something changed" check: frame difference on a tiny downscaled copy.

Downscaling with area averaging (INTER_AREA) over 16×16-pixel blocks also averages
sensor noise away, so a still scene measures well under one grey level while a hand or
a phone entering the view measures tens.  Costs well under a millisecond at 640×480.
"""

from __future__ import annotations

import cv2
import numpy as np

_SIZE = (80, 45)  # 16:9; a 4:3 frame is squeezed, which does not matter for a difference


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
        tiny = cv2.resize(gray, _SIZE, interpolation=cv2.INTER_AREA)
        if self._ref is None:
            self._ref = tiny
            return True
        self.last_diff = float(cv2.norm(tiny, self._ref, cv2.NORM_L1)) / tiny.size
        self._ref = tiny
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

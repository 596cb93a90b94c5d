"""Frame sources: image files, a directory of images, a video file, an OpenCV camera."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from sentinel.errors import HardwareError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".mjpg", ".mjpeg"}


class FrameSource(Protocol):
    def frames(self) -> Iterator[np.ndarray]: ...
    def close(self) -> None: ...


class ImageSource:
    """Frames from image files, in the order given (directories sorted by name)."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths

    @classmethod
    def from_path(cls, path: Path) -> ImageSource:
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            return cls(files)
        return cls([path])

    def frames(self) -> Iterator[np.ndarray]:
        for p in self.paths:
            img = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if img is None:
                raise HardwareError(f"{p}: not a readable image")
            yield img

    def close(self) -> None:
        pass

    def __enter__(self) -> ImageSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CaptureSource:
    """Frames from cv2.VideoCapture: a camera index, a /dev/video* path or a video file."""

    def __init__(self, target: str | int, *, width: int = 0, height: int = 0, fps: int = 0) -> None:
        self.target = target
        self._cap = cv2.VideoCapture(target)
        if not self._cap.isOpened():
            raise HardwareError(f"cannot open video source {target!r}")
        if isinstance(target, int) or str(target).startswith("/dev/video"):
            if width:
                self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            if height:
                self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
            if fps:
                self._cap.set(cv2.CAP_PROP_FPS, fps)

    def frames(self) -> Iterator[np.ndarray]:
        while True:
            ok, frame = self._cap.read()
            if not ok:
                return
            yield frame

    def close(self) -> None:
        self._cap.release()

    def __enter__(self) -> CaptureSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_source(spec: str, *, width: int = 0, height: int = 0, fps: int = 0) -> FrameSource:
    """Open a frame source from a config string (index, device, video, image or directory)."""
    if spec.isdigit():
        return CaptureSource(int(spec), width=width, height=height, fps=fps)
    if spec.startswith("/dev/video"):
        return CaptureSource(spec, width=width, height=height, fps=fps)
    p = Path(spec)
    if not p.exists():
        raise HardwareError(f"frame source {spec!r} does not exist")
    if p.is_dir() or p.suffix.lower() in IMAGE_SUFFIXES:
        return ImageSource.from_path(p)
    return CaptureSource(str(p))

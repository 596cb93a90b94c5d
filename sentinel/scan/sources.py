"""Frame sources: image files, a directory of images, a video file, an OpenCV camera, the
Raspberry Pi camera (Picamera2, optional), and a supervisor that reopens a failing camera
with backoff.  Frames stay in memory: nothing here writes an image to disk."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import cv2
import numpy as np

from sentinel.errors import HardwareError

if TYPE_CHECKING:
    from sentinel.config import CameraConfig

log = logging.getLogger(__name__)

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
        """Each readable image in turn (``images.load_image``: regular files, bounded
        size).  In a directory an unreadable file is logged and skipped; a single file
        that cannot be read raises ``HardwareError``."""
        from sentinel.scan.images import ImageRefused, load_image

        for p in self.paths:
            try:
                img = load_image(p)
            except ImageRefused as exc:
                if len(self.paths) == 1:
                    raise
                log.warning("skipping %s", exc)
                continue
            yield img

    def close(self) -> None:
        pass

    def __enter__(self) -> ImageSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def is_black(frame: np.ndarray, level: int = 12) -> bool:
    """A covered lens, a dead sensor or a disconnected CSI cable: nothing above ``level``."""
    small = cv2.resize(frame, (64, 36), interpolation=cv2.INTER_AREA)
    return int(small.max()) <= level


class CaptureSource:
    """Frames from cv2.VideoCapture: a camera index, a /dev/video* path or a video file.

    For a live camera a failed read or ``black_frames`` black frames in a row raise
    ``HardwareError`` (the supervisor reopens it); a video file just ends.
    """

    def __init__(
        self,
        target: str | int,
        *,
        width: int = 0,
        height: int = 0,
        fps: int = 0,
        exposure: float | None = None,
        black_frames: int = 30,
    ) -> None:
        self.target = target
        self.live = isinstance(target, int) or str(target).startswith("/dev/video")
        self.black_frames = black_frames
        self._cap = cv2.VideoCapture(target)
        if not self._cap.isOpened():
            self._cap.release()
            raise HardwareError(f"cannot open video source {target!r}")
        if self.live:
            if width:
                self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            if height:
                self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
            if fps:
                self._cap.set(cv2.CAP_PROP_FPS, fps)
            if exposure is not None:
                # V4L2: 1 = manual exposure; the value is in the driver's units (100 µs)
                self._cap.set(cv2.CAP_PROP_AUTO_EXPOSURE, 1)
                self._cap.set(cv2.CAP_PROP_EXPOSURE, exposure)

    def frames(self) -> Iterator[np.ndarray]:
        black = 0
        while True:
            ok, frame = self._cap.read()
            if not ok or frame is None:
                if self.live:
                    raise HardwareError(f"camera {self.target!r} stopped delivering frames")
                return
            if self.live and self.black_frames:
                black = black + 1 if is_black(frame) else 0
                if black >= self.black_frames:
                    raise HardwareError(f"camera {self.target!r} gives only black frames")
            yield frame

    def close(self) -> None:
        self._cap.release()

    def __enter__(self) -> CaptureSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PicameraSource:
    """Frames from a Raspberry Pi camera module through Picamera2 (optional; imported only
    when ``camera.source = "picamera2"``)."""

    def __init__(
        self,
        *,
        width: int = 1280,
        height: int = 720,
        fps: int = 15,
        exposure: float | None = None,
        black_frames: int = 30,
    ) -> None:
        try:
            from picamera2 import Picamera2  # type: ignore[import-not-found]
        except ImportError:
            raise HardwareError(
                "camera.source is picamera2 but Picamera2 is not installed (apt install "
                "python3-picamera2 on Raspberry Pi OS)"
            ) from None
        self.black_frames = black_frames
        try:
            self._cam = Picamera2()
            controls: dict[str, object] = {}
            if fps:
                controls["FrameDurationLimits"] = (int(1e6 / fps), int(1e6 / fps))
            if exposure is not None:
                controls["ExposureTime"] = int(exposure)  # microseconds
                controls["AeEnable"] = False
            cfg = self._cam.create_video_configuration(
                main={"size": (width, height), "format": "RGB888"}, controls=controls
            )
            self._cam.configure(cfg)
            self._cam.start()
        except Exception as exc:  # libcamera raises plain RuntimeErrors
            raise HardwareError(f"cannot start the Pi camera: {exc}") from None

    def frames(self) -> Iterator[np.ndarray]:
        black = 0
        while True:
            try:
                frame = self._cam.capture_array("main")
            except Exception as exc:
                raise HardwareError(f"Pi camera stopped delivering frames: {exc}") from None
            black = black + 1 if is_black(frame) else 0
            if self.black_frames and black >= self.black_frames:
                raise HardwareError("Pi camera gives only black frames")
            yield frame  # "RGB888" is BGR order in memory, as OpenCV expects

    def close(self) -> None:
        try:
            self._cam.stop()
            self._cam.close()
        except Exception:  # noqa: S110 - closing a camera that already vanished
            pass


def open_source(
    spec: str,
    *,
    width: int = 0,
    height: int = 0,
    fps: int = 0,
    exposure: float | None = None,
) -> FrameSource:
    """Open a frame source from a config string (index, device, picamera2, video, image
    or directory)."""
    if spec == "picamera2":
        return PicameraSource(width=width or 1280, height=height or 720, fps=fps, exposure=exposure)
    if spec.isdigit():
        return CaptureSource(int(spec), width=width, height=height, fps=fps, exposure=exposure)
    if spec.startswith("/dev/video"):
        return CaptureSource(spec, width=width, height=height, fps=fps, exposure=exposure)
    p = Path(spec)
    if not p.exists():
        raise HardwareError(f"frame source {spec!r} does not exist")
    if p.is_dir() or p.suffix.lower() in IMAGE_SUFFIXES:
        return ImageSource.from_path(p)
    return CaptureSource(str(p))


def is_live(spec: str) -> bool:
    """A camera (reopened on faults) rather than a file or directory (ends)."""
    return spec == "picamera2" or spec.isdigit() or spec.startswith("/dev/video")


@dataclass(slots=True)
class Backoff:
    """Reopen delays: doubling from ``min_s`` to ``max_s``; ``reset()`` after success."""

    min_s: float = 1.0
    max_s: float = 60.0
    _next: float = 0.0

    def next(self) -> float:
        delay = self._next or self.min_s
        self._next = min(self.max_s, delay * 2)
        return delay

    def reset(self) -> None:
        self._next = 0.0


def supervised_frames(
    cam: CameraConfig,
    stop: threading.Event,
    *,
    on_fault: Callable[[str], None],
    on_recover: Callable[[], None],
    idle: Callable[[], None] = lambda: None,
    opener: Callable[[], FrameSource] | None = None,
    backoff: Backoff | None = None,
) -> Iterator[np.ndarray]:
    """Frames from the configured camera until ``stop``; a camera that vanishes or goes
    black is reported once (``on_fault``), reopened with backoff (waiting on ``stop``,
    calling ``idle`` at least every 5 s for the watchdog) and reported back
    (``on_recover``) with its first good frame.  File sources end (or loop)."""
    live = is_live(cam.source)
    opener = opener or (
        lambda: open_source(
            cam.source, width=cam.width, height=cam.height, fps=cam.fps, exposure=cam.exposure
        )
    )
    backoff = backoff or Backoff()
    faulted = False
    while not stop.is_set():
        try:
            source = opener()
        except HardwareError as exc:
            if not live:
                raise
            faulted = _fault(faulted, str(exc), on_fault)
            _wait(stop, backoff.next(), idle)
            continue
        try:
            for frame in source.frames():
                if faulted:
                    faulted = False
                    backoff.reset()
                    on_recover()
                yield frame
                if stop.is_set():
                    return
        except HardwareError as exc:
            faulted = _fault(faulted, str(exc), on_fault)
            _wait(stop, backoff.next(), idle)
            continue
        finally:
            source.close()
        if not live and not cam.loop:
            return


def _fault(already: bool, message: str, on_fault: Callable[[str], None]) -> bool:
    if not already:
        log.warning("camera fault: %s", message)
        on_fault(message)
    return True


def _wait(stop: threading.Event, seconds: float, idle: Callable[[], None]) -> None:
    end = time.monotonic() + seconds
    while not stop.is_set():
        left = end - time.monotonic()
        if left <= 0:
            return
        idle()
        stop.wait(min(left, 5.0))

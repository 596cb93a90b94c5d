"""Frame sources: a video file through VideoCapture, a vanished or black camera that
raises a fault and recovers (supervised_frames with backoff on the stop event)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from sentinel.config import CameraConfig
from sentinel.errors import HardwareError
from sentinel.scan import synth
from sentinel.scan.sources import (
    Backoff,
    CaptureSource,
    ImageSource,
    is_black,
    open_source,
    supervised_frames,
)


def _video(path: Path, frames: list[np.ndarray]) -> Path:
    h, w = frames[0].shape[:2]
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 15, (w, h))
    for f in frames:
        out.write(f)
    out.release()
    return path


def test_camera_source_over_a_video_file(tmp_path: Path) -> None:
    code = synth.render_qr("video-code", 6)
    frames = [synth.place(code, 320, 240, synth.Degrade(fill=0.7), seed=i) for i in range(5)]
    src = open_source(str(_video(tmp_path / "v.avi", frames)))
    assert isinstance(src, CaptureSource) and not src.live
    with src:
        got = list(src.frames())
    assert len(got) == 5 and got[0].shape == (240, 320, 3)


def test_image_directory_in_name_order(tmp_path: Path) -> None:
    for name, v in (("b.png", 200), ("a.png", 100)):
        cv2.imwrite(str(tmp_path / name), np.full((8, 8, 3), v, np.uint8))
    src = open_source(str(tmp_path))
    assert isinstance(src, ImageSource)
    assert [int(f[0, 0, 0]) for f in src.frames()] == [100, 200]


def test_missing_source_and_missing_picamera2_are_hardware_errors() -> None:
    with pytest.raises(HardwareError):
        open_source("/nonexistent/frames")
    with pytest.raises(HardwareError, match="[Pp]icamera2"):
        open_source("picamera2")


def test_live_camera_that_stops_or_goes_black_raises(tmp_path: Path) -> None:
    video = _video(tmp_path / "v.avi", [synth.blank_frame(160, 120, i) for i in range(3)])
    cam = CaptureSource(str(video))
    cam.live = True  # a camera whose stream ends has vanished
    with pytest.raises(HardwareError, match="stopped"):
        list(cam.frames())
    black = _video(tmp_path / "b.avi", [np.zeros((120, 160, 3), np.uint8)] * 6)
    cam = CaptureSource(str(black), black_frames=4)
    cam.live = True
    with pytest.raises(HardwareError, match="black"):
        list(cam.frames())
    assert is_black(np.zeros((10, 10), np.uint8)) and not is_black(synth.blank_frame(64, 48))


class _FlakyCamera:
    """Opens fail twice, then 3 frames, then the camera vanishes, then 2 frames."""

    def __init__(self) -> None:
        self.opens = 0
        self.script = ["fail", "fail", 3, 2]

    def __call__(self) -> _Source:
        self.opens += 1
        step = self.script.pop(0) if self.script else 0
        if step == "fail":
            raise HardwareError("cannot open video source 0")
        return _Source(int(step), vanish=bool(self.script))


class _Source:
    def __init__(self, n: int, vanish: bool) -> None:
        self.n, self.vanish, self.closed = n, vanish, False

    def frames(self) -> Iterator[np.ndarray]:
        for i in range(self.n):
            yield np.full((4, 4), 100 + i, np.uint8)
        if self.vanish:
            raise HardwareError("camera 0 stopped delivering frames")

    def close(self) -> None:
        self.closed = True


def test_vanished_camera_faults_once_and_recovers_with_backoff() -> None:
    stop = threading.Event()
    events: list[str] = []
    delays: list[float] = []

    class _RecordingBackoff(Backoff):
        def next(self) -> float:
            d = super().next()
            delays.append(d)
            return 0.0  # no real waiting in a test; the delays are checked below

    cam = _FlakyCamera()
    frames = []
    for f in supervised_frames(
        CameraConfig(source="0"),
        stop,
        on_fault=lambda msg: events.append("fault"),
        on_recover=lambda: events.append("recovered"),
        opener=cam,
        backoff=_RecordingBackoff(1.0, 8.0),
    ):
        frames.append(int(f[0, 0]))
        events.append("frame")
        if len(frames) == 5:
            stop.set()
    assert frames == [100, 101, 102, 100, 101]
    assert events == ["fault", "recovered", "frame", "frame", "frame", "fault", "recovered",
                      "frame", "frame"]  # fmt: skip
    assert delays == [1.0, 2.0, 1.0]  # doubling while failing, reset after recovery


def test_backoff_doubles_to_a_cap() -> None:
    b = Backoff(1.0, 5.0)
    assert [b.next() for _ in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    b.reset()
    assert b.next() == 1.0


def test_file_sources_end_instead_of_reopening(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "a.png"), synth.blank_frame(32, 24))
    stop = threading.Event()
    got = list(
        supervised_frames(
            CameraConfig(source=str(tmp_path)),
            stop,
            on_fault=lambda _m: pytest.fail("no fault for files"),
            on_recover=lambda: None,
        )
    )
    assert len(got) == 1

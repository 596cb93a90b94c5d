"""The demo service's camera: a looping script of rendered presentations.

Certificates (EU DCC), health codes and an ID card are put in front of a simulated
camera one after the other, admits alternating with refusals, each for ``SHOW_FRAMES``
then ``GAP_FRAMES`` of an empty entrance (``fps`` 0: unpaced, for tests).  Health codes
are short-lived (a screenshot is refused), so each one is issued as it is shown.  Frames
are rendered in memory and paced on the daemon's stop event: Ctrl-C ends the wait at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import cv2
import numpy as np

from sentinel.authority import healthcode_issue as hci
from sentinel.credentials.iddoc import check_digit
from sentinel.reasons import ReasonCode
from sentinel.scan.synth import blank_frame, render_id_card, render_qr

FPS = 10
SHOW_FRAMES = 8  # a presentation in view (0.8 s at FPS)
GAP_FRAMES = 12  # then the empty entrance (1.2 s)
WIDTH, HEIGHT = 1280, 720

# Documents in the demo authority's status set (ICAO 9303 TD3, issuing state "XXA",
# the specimen code ICAO uses): one green, one red.
PASSPORT_GREEN = "C01X00T47"
PASSPORT_RED = "X12345678"


def td3(surname: str, given: str, number: str, born: str = "900101") -> str:
    """A valid TD3 (passport) MRZ, ICAO 9303 part 4; check digits per part 3 §4.9."""
    l1 = ("P<XXA" + surname + "<<" + given + "<" * 44)[:44]
    num = (number + "<" * 9)[:9]
    body = num + check_digit(num) + "XXA" + born + check_digit(born) + "F"
    body += "310101" + check_digit("310101") + "<" * 14 + "<"
    return l1 + "\n" + body + check_digit(body[0:10] + body[13:20] + body[21:43])


@dataclass(frozen=True, slots=True)
class Scene:
    """One presentation: its name, what the pipeline should decide, how to draw it."""

    name: str
    expected: ReasonCode
    draw: Callable[[datetime], np.ndarray]  # grayscale image of the phone or the card
    card: bool = False


def qr_scene(name: str, expected: ReasonCode, text: str | Callable[[datetime], str]) -> Scene:
    def draw(now: datetime) -> np.ndarray:
        return render_qr(text(now) if callable(text) else text, module_px=8)

    return Scene(name, expected, draw)


def card_scene(name: str, expected: ReasonCode, mrz: str) -> Scene:
    image = render_id_card(mrz, seed=3)
    return Scene(name, expected, lambda _now: image, card=True)


def health_scenes(issuer: hci.Issuer) -> list[Scene]:
    """Health codes issued at presentation time (the subjects match the demo status set)."""
    day = timedelta(days=1)

    def code(subject: str, status: str, age: timedelta = timedelta(0)) -> Callable:
        def make(now: datetime) -> str:
            return hci.issue(
                issuer, subject, status, issued_at=now - age, status_valid_until=now + day
            )

        return make

    def forged(now: datetime) -> str:
        return hci.tamper_status(code("DEMOFORG0E5F", "red")(now), "green")

    return [
        qr_scene("health code green", ReasonCode.ADMIT, code("DEMOGREEN0A1", "green")),
        qr_scene(
            "code screenshot",
            ReasonCode.CODE_EXPIRED,
            code("DEMOSHOT0B2C", "green", timedelta(minutes=10)),
        ),
        qr_scene("health code red", ReasonCode.CODE_RED, code("DEMORED00C3D", "red")),
        qr_scene(
            "code green, set red", ReasonCode.CODE_STATUS_CHANGED, code("DEMOCHNG0D4E", "green")
        ),
        qr_scene("code forged green", ReasonCode.BAD_SIGNATURE, forged),
    ]


def interleave(admits: list[Scene], refusals: list[Scene]) -> list[Scene]:
    """Admit, refusal, admit, refusal, ...: every refusal once, admits cycled."""
    out: list[Scene] = []
    for i, r in enumerate(refusals):
        out += [admits[i % len(admits)], r]
    return out


class DemoCamera:
    """A FrameSource: one pass over ``scenes`` per open (the supervisor reopens it)."""

    def __init__(
        self,
        scenes: list[Scene],
        stop: threading.Event,
        *,
        fps: int = FPS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_scene: Callable[[Scene], None] = lambda _s: None,
    ) -> None:
        self.scenes = scenes
        self.stop = stop
        self.fps = fps
        self.clock = clock
        self.on_scene = on_scene
        self.current: Scene | None = None
        self._empty = blank_frame(WIDTH, HEIGHT, seed=0)
        self._next = time.monotonic()

    def _due(self) -> bool:
        """Wait for the next frame time; False once stopped."""
        if not self.fps:
            return not self.stop.is_set()
        self._next += 1.0 / self.fps
        # Event.wait, not sleep: a stop (SIGINT) ends the wait at once.
        if self.stop.wait(max(0.0, self._next - time.monotonic())):
            return False
        if time.monotonic() - self._next > 1.0:  # far behind (a slow machine): resync
            self._next = time.monotonic()
        return True

    def _put(self, image: np.ndarray, angle: float, fill: float, shift: float) -> np.ndarray:
        """``image`` held up in the empty scene, turned by ``angle`` degrees: one affine
        warp onto the background (a few ms; the synth corpus's degradations cost ~50 ms
        a frame, too much at 10 fps on a Pi)."""
        ih, iw = image.shape[:2]
        scale = min(HEIGHT * fill / ih, 0.95 * WIDTH / iw)
        m = cv2.getRotationMatrix2D((iw / 2, ih / 2), angle, scale)
        m[0, 2] += WIDTH / 2 + shift * WIDTH - iw / 2
        m[1, 2] += HEIGHT / 2 - ih / 2
        frame = self._empty.copy()
        cv2.warpAffine(
            image,
            m,
            (WIDTH, HEIGHT),
            dst=frame,
            flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_TRANSPARENT,
        )
        return frame

    def frames(self) -> Iterator[np.ndarray]:
        for si, scene in enumerate(self.scenes):
            image = cv2.cvtColor(scene.draw(self.clock()), cv2.COLOR_GRAY2BGR)
            self.current = scene
            self.on_scene(scene)
            fill = 0.8 if scene.card else 0.6
            for k in range(SHOW_FRAMES):
                if not self._due():
                    return
                # a hand: turning a little, drifting a little, frame by frame
                yield self._put(image, 6 - 1.5 * k - si % 5, fill, 0.02 * (k % 3) - 0.02)
            for _ in range(GAP_FRAMES):
                if not self._due():
                    return
                yield self._empty

    def close(self) -> None:
        self.current = None

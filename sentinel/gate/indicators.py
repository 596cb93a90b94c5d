"""LED and buzzer patterns, timed by the gate's scheduler (no blink threads to chase).

Each output is a :class:`Channel` with a *background* (off, solid on, or a repeating
pattern such as an alarm) and short *flashes* played on top of it (a refusal); when a
flash ends the background comes back.  Patterns are distinct to eye and ear:

=========  =====================================  ===========================
signal     light                                  buzzer
=========  =====================================  ===========================
admit      green solid while the lock is open      one short beep (0.15 s)
refuse     red: 3 flashes of 0.25 s                two short beeps
fault      red: slow blink (0.5 s on, 1.5 s off)   three long beeps at onset
alarm      red: fast blink (0.1 s / 0.1 s)         beeping until the door shuts
=========  =====================================  ===========================
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from sentinel.gate.timers import Handle, Scheduler


@dataclass(frozen=True, slots=True)
class Pattern:
    """``n`` times: on for ``on_s``, then off for ``off_s``; ``n=None`` repeats forever."""

    on_s: float
    off_s: float
    n: int | None = 1


ADMIT_BEEP = Pattern(0.15, 0.0, 1)
REFUSE_RED = Pattern(0.25, 0.25, 3)
REFUSE_BEEP = Pattern(0.1, 0.1, 2)
FAULT_RED = Pattern(0.5, 1.5, None)
FAULT_BEEP = Pattern(0.6, 0.4, 3)
ALARM_RED = Pattern(0.1, 0.1, None)
ALARM_BEEP = Pattern(0.5, 0.5, None)

# A background is off (None), solid on (True) or a repeating pattern.
Background = Pattern | bool | None


class Channel:
    """One LED or buzzer (or nothing, when the pin is not fitted)."""

    def __init__(self, device: Any | None, scheduler: Scheduler, lock: threading.RLock) -> None:
        self.device = device
        self._scheduler = scheduler
        self._lock = lock
        self._background: Background = None
        self._flashing = False
        self._gen = 0
        self._handle: Handle | None = None

    @property
    def background(self) -> Background:
        return self._background

    def set_background(self, background: Background) -> None:
        with self._lock:
            if background == self._background:
                return
            self._background = background
            if not self._flashing:
                self._apply_background()

    def flash(self, pattern: Pattern) -> None:
        """Play a finite pattern over the background, then return to it."""
        with self._lock:
            self._flashing = True
            self._play(pattern)

    def cancel_flash(self) -> None:
        with self._lock:
            if self._flashing:
                self._flashing = False
                self._apply_background()

    def stop(self) -> None:
        """Off, with nothing pending (shutdown)."""
        with self._lock:
            self._gen += 1
            self._cancel()
            self._background = None
            self._flashing = False
            if self.device is not None:
                self.device.off()

    # --- internals (called with the lock held) ------------------------------------------

    def _cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _apply_background(self) -> None:
        bg = self._background
        if isinstance(bg, Pattern):
            self._play(bg)
            return
        self._gen += 1
        self._cancel()
        if self.device is not None:
            self.device.value = 1 if bg else 0

    def _play(self, pattern: Pattern) -> None:
        self._gen += 1
        self._cancel()
        self._phase(pattern, pattern.n, self._gen, on=True)

    def _later(self, delay_s: float, gen: int, func: Any) -> None:
        def run() -> None:
            with self._lock:
                if gen == self._gen:
                    func()

        self._handle = self._scheduler.call_later(delay_s, run)

    def _phase(self, pattern: Pattern, remaining: int | None, gen: int, *, on: bool) -> None:
        if on:
            if self.device is not None:
                self.device.on()
            self._later(pattern.on_s, gen, lambda: self._phase(pattern, remaining, gen, on=False))
            return
        if self.device is not None:
            self.device.off()
        left = None if remaining is None else remaining - 1
        if left == 0:  # finished: a flash hands back to the background
            self._handle = None
            if self._flashing:
                self._flashing = False
                self._apply_background()
            return
        self._later(pattern.off_s, gen, lambda: self._phase(pattern, left, gen, on=True))

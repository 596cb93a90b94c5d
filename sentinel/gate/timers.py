"""When the gate's clock needs to wake it: a scheduler, injectable for tests.

Production uses :class:`ThreadScheduler` (one daemon ``threading.Timer`` per wake-up,
with ``time.monotonic`` as the clock).  Tests use :class:`ManualScheduler`, whose time
moves only when the test calls ``advance``: no sleeps, no races.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from typing import Protocol


class Handle(Protocol):
    def cancel(self) -> None: ...


class Scheduler(Protocol):
    def now(self) -> float:
        """Monotonic seconds."""
        ...

    def call_later(self, delay_s: float, func: Callable[[], None]) -> Handle: ...


class ThreadScheduler:
    """Real time: ``time.monotonic`` and daemon timer threads."""

    def now(self) -> float:
        return time.monotonic()

    def call_later(self, delay_s: float, func: Callable[[], None]) -> Handle:
        t = threading.Timer(max(0.0, delay_s), func)
        t.daemon = True
        t.start()
        return t


class _Call:
    __slots__ = ("cancelled", "func")

    def __init__(self, func: Callable[[], None]) -> None:
        self.func = func
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualScheduler:
    """A clock that moves only on ``advance``; due calls run in the caller's thread."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._queue: list[tuple[float, int, _Call]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def call_later(self, delay_s: float, func: Callable[[], None]) -> Handle:
        call = _Call(func)
        heapq.heappush(self._queue, (self._now + max(0.0, delay_s), next(self._seq), call))
        return call

    def pending(self) -> int:
        return sum(1 for *_, c in self._queue if not c.cancelled)

    def advance(self, seconds: float) -> None:
        """Move the clock forward, running every call that falls due, in time order."""
        end = self._now + seconds
        while self._queue and self._queue[0][0] <= end:
            at, _, call = heapq.heappop(self._queue)
            self._now = max(self._now, at)
            if not call.cancelled:
                call.func()
        self._now = end

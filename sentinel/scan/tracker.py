"""One presentation per code: consecutive frames showing the same code decide once."""

from __future__ import annotations

from collections.abc import Callable

from sentinel.scan.symbol import Symbol


class PresentationTracker:
    """Turns per-frame symbols into presentations.

    A code starts a new presentation when it was not visible in the previous
    ``absent_frames`` frames, or when ``cooldown_s`` passed since it was last presented.
    ``key`` names what is presented (default: the symbol's text; for ID documents the
    pipeline passes the document's identity, so two reads of one card that differ in an
    unchecked field, a name, are one presentation).
    """

    def __init__(
        self,
        cooldown_s: float = 5.0,
        absent_frames: int = 3,
        key: Callable[[Symbol], str] = lambda s: s.text,
    ) -> None:
        self.cooldown_s = cooldown_s
        self.absent_frames = absent_frames
        self.key = key
        self._last_seen: dict[str, int] = {}  # text -> frame number last seen
        self._presented_at: dict[str, float] = {}  # text -> time of its presentation
        self._frame = 0

    def update(self, symbols: list[Symbol], now: float) -> list[Symbol]:
        """Feed one frame's symbols; return those that start a new presentation."""
        self._frame += 1
        new = []
        for s in symbols:
            k = self.key(s)
            last = self._last_seen.get(k)
            gone = last is None or self._frame - last > self.absent_frames
            cooled = now - self._presented_at.get(k, float("-inf")) >= self.cooldown_s
            if gone or cooled:
                new.append(s)
                self._presented_at[k] = now
            self._last_seen[k] = self._frame
        # forget codes long gone, so memory stays bounded over a day of traffic
        horizon = self._frame - max(self.absent_frames, 1) * 10
        for text in [t for t, f in self._last_seen.items() if f < horizon]:
            del self._last_seen[text]
            self._presented_at.pop(text, None)
        return new

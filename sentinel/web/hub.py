"""The kiosk's live feed: pipeline events in, server-sent-event messages out.

``EventHub.on_event`` is a pipeline listener (called on the camera thread); each open
kiosk page holds an asyncio queue on the server's event loop, fed with
``loop.call_soon_threadsafe``.  The hub also remembers the device state the kiosk
warns about (camera fault, door alarm) so a page that (re)connects sees it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from sentinel.journal import Event
from sentinel.policy import Decision
from sentinel.reasons import MESSAGES, ReasonCode
from sentinel.web.cues import HINTS, cue_for

Message = tuple[str, dict[str, Any]]  # (SSE event name, JSON-able data)

_ALARMS = {ReasonCode.DOOR_FORCED, ReasonCode.DOOR_HELD_OPEN}
_QUEUE_MAX = 64


@dataclass(slots=True)
class DeviceState:
    camera_fault: bool = False
    alarm: str = ""  # a ReasonCode value, "" when none


def decision_message(event: Event, decision: Decision | None) -> dict[str, Any]:
    """What the kiosk shows for one presentation or override (no raw identifiers)."""
    try:
        en, zh = MESSAGES[ReasonCode(event.reason)]
    except ValueError:
        en, zh = event.reason, event.reason
    admit = decision.admit if decision is not None else event.decision in ("admit", "override")
    cue, prompt = cue_for(event.reason) if not admit else ("admit", "welcome")
    return {
        "verdict": "admit" if admit else "refuse",
        "kind": event.decision,
        "reason": event.reason,
        "en": en,
        "zh": zh,
        "name": decision.display_name if decision is not None else "",
        "warnings": list(decision.warnings) if decision is not None else [],
        "time": event.time.isoformat(),
        "cue": cue,  # admit / refuse / staff: the tone and the screen (sentinel.web.cues)
        "prompt": prompt,  # the spoken prompt family
    }


class EventHub:
    """Fan-out of kiosk messages to every connected page; thread-safe publish."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue[Message | None]]] = []
        self.device = DeviceState()
        self.status_fn: Callable[[], dict[str, Any]] = lambda: {}
        self.published = 0
        self._closed = False

    # --- producer side (any thread) ---------------------------------------------
    def on_event(self, event: Event, decision: Decision | None) -> None:
        """Pipeline listener: results for presentations/overrides, state for device events."""
        if event.decision in ("admit", "refuse", "override"):
            self.publish("decision", decision_message(event, decision))
            return
        try:
            reason = ReasonCode(event.reason)
        except ValueError:
            return
        with self._lock:
            if reason is ReasonCode.CAMERA_FAULT:
                self.device.camera_fault = True
            elif reason is ReasonCode.CAMERA_RECOVERED:
                self.device.camera_fault = False
            elif reason in _ALARMS:
                self.device.alarm = reason.value
            elif reason is ReasonCode.DOOR_CLOSED:
                self.device.alarm = ""
            elif reason is ReasonCode.DISK_FULL:  # a door alarm outranks it
                self.device.alarm = self.device.alarm or reason.value
            elif reason is ReasonCode.DISK_RECOVERED:
                if self.device.alarm == ReasonCode.DISK_FULL.value:
                    self.device.alarm = ""
            else:
                return
        self.publish_status()

    def on_hint(self, name: str) -> None:
        """Pipeline hint listener: a line on the idle screen (unknown hints: nothing)."""
        if name in HINTS:
            zh, en = HINTS[name]
            self.publish("hint", {"hint": name, "zh": zh, "en": en})

    def publish_status(self) -> None:
        self.publish("status", self.status_fn())

    def publish(self, name: str, data: dict[str, Any]) -> None:
        with self._lock:
            self.published += 1
            subs = list(self._subs)
        for loop, queue in subs:
            with contextlib.suppress(RuntimeError):  # that page's loop is gone
                loop.call_soon_threadsafe(_offer, queue, (name, data))

    def close(self) -> None:
        """End every stream (server shutdown)."""
        with self._lock:
            self._closed = True
            subs, self._subs = self._subs, []
        for loop, queue in subs:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_offer, queue, None)

    # --- consumer side (the server's event loop) ------------------------------------
    async def subscribe(self, keepalive_s: float) -> AsyncIterator[Message]:
        """Messages for one page: the current status first, then live ones.

        Every ``keepalive_s`` without news a fresh status is sent, which also keeps the
        data-freshness line current and lets the page notice a dead connection.
        """
        queue: asyncio.Queue[Message | None] = asyncio.Queue(_QUEUE_MAX)
        entry = (asyncio.get_running_loop(), queue)
        with self._lock:
            if self._closed:
                return
            self._subs.append(entry)
        try:
            yield ("status", self.status_fn())
            while True:
                try:
                    msg = await asyncio.wait_for(queue.get(), keepalive_s)
                except TimeoutError:
                    msg = ("status", self.status_fn())
                if msg is None:
                    return
                yield msg
        finally:
            with self._lock:
                if entry in self._subs:
                    self._subs.remove(entry)

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subs)


def _offer(queue: asyncio.Queue[Message | None], msg: Message | None) -> None:
    if queue.full():  # a stalled page loses its oldest message, never blocks the gate
        queue.get_nowait()
    queue.put_nowait(msg)

"""The door state machine: pure, driven by events and a clock.

``step(door, event, now, held_open_s)`` returns the next :class:`Door` and the effects
the shell (``Gate``) must carry out: energise or release the lock, raise or clear an
alarm, and wake the machine again at a given time.  No pins, threads or clocks in
here; ``now`` is a monotonic time in seconds, passed in.

States (the lock is "unlocked" while ``unlock_until`` is set)::

    IDLE ──grant──► GRANTED ──door opens──► OPEN ──open > held_open_s──► HELD_OPEN
     │  ◄──unlock window ends──┘              │                            │
     │  ◄────────────door closes──────────────┘◄────────door closes────────┘
     └──door opens without a grant──► FORCED ──door closes──► IDLE

Rules an installer expects:

* A grant while the lock is already unlocked *extends* the window to
  ``max(old end, now + duration)``; it never re-pulses the relay.
* The held-open time runs from the moment the door opened, whatever the grant length.
* A door opened after the unlock window ended is forced (no grace beyond the window).
* Closing the door ends an alarm (``DOOR_CLOSED`` is reported) but does not cut a
  running unlock window short: a second admitted person may still be on the way.
* Without a door contact only ``Grant`` and ``Tick`` arrive: IDLE ⇄ GRANTED.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from sentinel.reasons import ReasonCode


class DoorState(StrEnum):
    IDLE = "idle"  # locked, door closed
    GRANTED = "granted"  # unlocked, door not (yet) opened
    OPEN = "open"  # door open after a grant, within the held-open time
    HELD_OPEN = "held_open"  # alarm: open longer than held_open_s
    FORCED = "forced"  # alarm: opened while locked


ALARM_STATES = frozenset({DoorState.HELD_OPEN, DoorState.FORCED})


@dataclass(frozen=True, slots=True)
class Door:
    """Everything the machine remembers.  Times are monotonic seconds."""

    state: DoorState = DoorState.IDLE
    unlock_until: float | None = None  # None: locked
    opened_at: float | None = None  # None: door closed (or no contact fitted)

    @property
    def unlocked(self) -> bool:
        return self.unlock_until is not None

    @property
    def alarm(self) -> bool:
        return self.state in ALARM_STATES


# --- events ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Grant:
    """Unlock for ``duration_s`` (admit, exit button, staff override)."""

    duration_s: float


@dataclass(frozen=True, slots=True)
class Opened:
    """The door contact reports the door open."""


@dataclass(frozen=True, slots=True)
class Closed:
    """The door contact reports the door shut."""


@dataclass(frozen=True, slots=True)
class Tick:
    """Time has passed; deadlines are checked against ``now``."""


DoorEvent = Grant | Opened | Closed | Tick


# --- effects --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Unlock:
    """Release the lock (the relay goes to its *unlock* state)."""


@dataclass(frozen=True, slots=True)
class Lock:
    """Secure the lock again."""


@dataclass(frozen=True, slots=True)
class Alarm:
    """An alarm starts: ``DOOR_HELD_OPEN`` or ``DOOR_FORCED``."""

    reason: ReasonCode


@dataclass(frozen=True, slots=True)
class AlarmCleared:
    """The door closed and ended an alarm (reported as ``DOOR_CLOSED``)."""

    ended: ReasonCode


@dataclass(frozen=True, slots=True)
class WakeAt:
    """Call ``step(..., Tick(), at)`` no later than ``at``."""

    at: float


Effect = Unlock | Lock | Alarm | AlarmCleared | WakeAt


def _wake(door: Door, held_open_s: float) -> tuple[Effect, ...]:
    """The next deadline of ``door``, if any."""
    times = []
    if door.unlock_until is not None:
        times.append(door.unlock_until)
    if door.state is DoorState.OPEN and door.opened_at is not None:
        times.append(door.opened_at + held_open_s)
    return (WakeAt(min(times)),) if times else ()


def _expire(door: Door, now: float, held_open_s: float) -> tuple[Door, list[Effect]]:
    """Apply every deadline that has passed at ``now``."""
    effects: list[Effect] = []
    if door.unlock_until is not None and now >= door.unlock_until:
        door = replace(door, unlock_until=None)
        effects.append(Lock())
        if door.state is DoorState.GRANTED:
            door = replace(door, state=DoorState.IDLE)
    if (
        door.state is DoorState.OPEN
        and door.opened_at is not None
        and now >= door.opened_at + held_open_s
    ):
        door = replace(door, state=DoorState.HELD_OPEN)
        effects.append(Alarm(ReasonCode.DOOR_HELD_OPEN))
    return door, effects


def step(
    door: Door, event: DoorEvent, now: float, held_open_s: float
) -> tuple[Door, tuple[Effect, ...]]:
    """Apply ``event`` at time ``now``; return the new door and the effects, in order."""
    door, effects = _expire(door, now, held_open_s)
    match event:
        case Grant(duration_s=d):
            end = now + max(0.0, d)
            if door.unlock_until is None:
                effects.append(Unlock())
                door = replace(door, unlock_until=end)
            else:  # already unlocked: extend, never re-pulse
                door = replace(door, unlock_until=max(door.unlock_until, end))
            if door.state is DoorState.IDLE:
                door = replace(door, state=DoorState.GRANTED)
        case Opened():
            if door.opened_at is None:
                door = replace(door, opened_at=now)
                if door.state is DoorState.GRANTED:
                    door = replace(door, state=DoorState.OPEN)
                elif door.state is DoorState.IDLE:
                    door = replace(door, state=DoorState.FORCED)
                    effects.append(Alarm(ReasonCode.DOOR_FORCED))
                door, more = _expire(door, now, held_open_s)  # held_open_s may be 0
                effects.extend(more)
        case Closed():
            if door.opened_at is not None:
                was = door.state
                door = replace(
                    door,
                    opened_at=None,
                    state=DoorState.GRANTED if door.unlocked else DoorState.IDLE,
                )
                if was is DoorState.HELD_OPEN:
                    effects.append(AlarmCleared(ReasonCode.DOOR_HELD_OPEN))
                elif was is DoorState.FORCED:
                    effects.append(AlarmCleared(ReasonCode.DOOR_FORCED))
        case Tick():
            pass
    return door, (*effects, *_wake(door, held_open_s))

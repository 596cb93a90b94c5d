"""The pure door state machine: events and a clock in, state and effects out."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sentinel.gate.door import (
    Alarm,
    AlarmCleared,
    Closed,
    Door,
    DoorState,
    Grant,
    Lock,
    Opened,
    Tick,
    Unlock,
    WakeAt,
    step,
)
from sentinel.reasons import ReasonCode

HELD = 10.0


def run(events: list[tuple[float, object]], door: Door | None = None) -> tuple[Door, list]:
    door = door or Door()
    out: list = []
    for now, ev in events:
        door, effects = step(door, ev, now, HELD)  # type: ignore[arg-type]
        out.extend(e for e in effects if not isinstance(e, WakeAt))
    return door, out


def test_grant_unlocks_and_relocks_at_deadline() -> None:
    door, effects = step(Door(), Grant(3.0), 100.0, HELD)
    assert door.state is DoorState.GRANTED and door.unlock_until == 103.0
    assert effects == (Unlock(), WakeAt(103.0))
    door, effects = step(door, Tick(), 102.9, HELD)
    assert door.unlocked and effects == (WakeAt(103.0),)
    door, effects = step(door, Tick(), 103.0, HELD)
    assert door == Door() and effects == (Lock(),)


def test_second_grant_extends_without_second_unlock() -> None:
    door, effects = run([(0.0, Grant(3.0)), (2.0, Grant(3.0))])
    assert door.unlock_until == 5.0
    assert effects == [Unlock()]
    # a shorter grant never shortens the window
    door, _ = step(door, Grant(0.5), 2.5, HELD)
    assert door.unlock_until == 5.0


def test_normal_passage_no_alarm() -> None:
    door, effects = run([(0.0, Grant(3.0)), (1.0, Opened()), (2.0, Closed()), (3.0, Tick())])
    assert door == Door()
    assert effects == [Unlock(), Lock()]


def test_held_open_counts_from_opening_and_clears_on_close() -> None:
    door, effects = run([(0.0, Grant(3.0)), (1.0, Opened()), (10.9, Tick())])
    assert door.state is DoorState.OPEN and effects == [Unlock(), Lock()]
    assert not door.alarm
    door, effects = step(door, Tick(), 11.0, HELD)
    assert door.state is DoorState.HELD_OPEN and effects == (Alarm(ReasonCode.DOOR_HELD_OPEN),)
    assert door.alarm  # what the kiosk and the health report read
    door, effects = step(door, Tick(), 50.0, HELD)  # raised once, not again
    assert effects == ()
    door, effects = step(door, Closed(), 51.0, HELD)
    assert door == Door() and effects == (AlarmCleared(ReasonCode.DOOR_HELD_OPEN),)


def test_held_open_wake_is_requested() -> None:
    door, _ = run([(0.0, Grant(3.0)), (1.0, Opened())])
    _, effects = step(door, Tick(), 4.0, HELD)  # lock at 3, door still open
    assert effects == (Lock(), WakeAt(11.0))


def test_forced_when_opened_locked() -> None:
    door, effects = step(Door(), Opened(), 5.0, HELD)
    assert door.state is DoorState.FORCED and effects == (Alarm(ReasonCode.DOOR_FORCED),)
    door, effects = step(door, Tick(), 500.0, HELD)  # forced does not turn into held-open
    assert door.state is DoorState.FORCED and effects == ()
    door, effects = step(door, Closed(), 501.0, HELD)
    assert door == Door() and effects == (AlarmCleared(ReasonCode.DOOR_FORCED),)


def test_opening_after_window_is_forced() -> None:
    door, effects = run([(0.0, Grant(3.0)), (3.5, Opened())])
    assert door.state is DoorState.FORCED
    assert effects == [Unlock(), Lock(), Alarm(ReasonCode.DOOR_FORCED)]


def test_close_keeps_running_window_for_the_next_person() -> None:
    door, _ = run([(0.0, Grant(3.0)), (0.5, Opened()), (1.0, Closed())])
    assert door.state is DoorState.GRANTED and door.unlock_until == 3.0
    door, effects = step(door, Opened(), 2.0, HELD)
    assert door.state is DoorState.OPEN and effects == (WakeAt(3.0),)


def test_grant_during_alarm_unlocks_but_keeps_alarm() -> None:
    door, effects = run([(0.0, Opened()), (1.0, Grant(3.0))])
    assert door.state is DoorState.FORCED and door.unlocked
    door, effects = step(door, Closed(), 2.0, HELD)
    assert door.state is DoorState.GRANTED
    assert effects == (AlarmCleared(ReasonCode.DOOR_FORCED), WakeAt(4.0))


def test_zero_held_open_alarms_at_once() -> None:
    door, effects = step(Door(DoorState.GRANTED, 5.0), Opened(), 1.0, 0.0)
    assert door.state is DoorState.HELD_OPEN
    assert Alarm(ReasonCode.DOOR_HELD_OPEN) in effects


def test_repeated_contact_events_are_idempotent() -> None:
    door, effects = run([(0.0, Closed()), (1.0, Closed())])
    assert door == Door() and effects == []
    door, effects = run([(0.0, Opened()), (1.0, Opened())])
    assert effects == [Alarm(ReasonCode.DOOR_FORCED)]


EVENTS = st.one_of(
    st.builds(Grant, st.floats(0, 30)), st.just(Opened()), st.just(Closed()), st.just(Tick())
)


@given(st.lists(st.tuples(st.floats(0, 5), EVENTS), max_size=40))
def test_invariants_hold_for_any_sequence(seq: list[tuple[float, object]]) -> None:
    """Unlock/Lock alternate, the lock state matches the effects, alarms pair with clears."""
    door, now = Door(), 0.0
    unlocked, alarm = False, None
    for dt, ev in seq:
        now += dt
        door, effects = step(door, ev, now, HELD)  # type: ignore[arg-type]
        for e in effects:
            if isinstance(e, Unlock):
                assert not unlocked
                unlocked = True
            elif isinstance(e, Lock):
                assert unlocked
                unlocked = False
            elif isinstance(e, Alarm):
                assert alarm is None
                alarm = e.reason
            elif isinstance(e, AlarmCleared):
                assert alarm == e.ended
                alarm = None
        assert door.unlocked == unlocked
        assert door.alarm == (alarm is not None)
        assert (door.unlock_until is None) or door.unlock_until >= now
        wakes = [e for e in effects if isinstance(e, WakeAt)]
        assert len(wakes) <= 1 and all(w.at >= now for w in wakes)


@pytest.mark.parametrize("state", list(DoorState))
def test_tick_far_future_always_locks(state: DoorState) -> None:
    opened = None if state in (DoorState.IDLE, DoorState.GRANTED) else 0.0
    door, _ = step(Door(state, 5.0, opened), Tick(), 1e6, HELD)
    assert not door.unlocked


def test_a_repeated_open_contact_does_not_restart_the_held_open_time() -> None:
    """A bouncing door contact reports Opened twice: the held-open time still counts from
    the first opening."""
    door, _ = run([(0.0, Grant(3.0)), (0.5, Opened()), (5.0, Opened())])
    assert door.opened_at == 0.5
    door, effects = step(door, Tick(), 0.5 + HELD + 0.1, HELD)
    assert door.state is DoorState.HELD_OPEN
    assert Alarm(ReasonCode.DOOR_HELD_OPEN) in effects

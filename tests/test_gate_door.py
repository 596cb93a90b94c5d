"""Door contact and exit button on MockFactory pins: alarms, exits, indicators."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from gpiozero.pins.mock import MockFactory

from sentinel.config import GateConfig
from sentinel.gate import Gate, GateSignal
from sentinel.gate.door import DoorState
from sentinel.gate.timers import ManualScheduler
from sentinel.reasons import ReasonCode

DOOR, EXIT = 5, 6


@pytest.fixture
def factory() -> MockFactory:
    return MockFactory()


@pytest.fixture
def clock() -> ManualScheduler:
    return ManualScheduler()


@pytest.fixture
def gate(factory: MockFactory, clock: ManualScheduler) -> Iterator[Gate]:
    cfg = replace(
        GateConfig(), door_pin=DOOR, exit_pin=EXIT, pulse_s=3.0, held_open_s=15.0, input_bounce_s=0
    )
    g = Gate(cfg, pin_factory=factory, scheduler=clock)
    # the mock pin floats to its pull-up (open) as the Button claims it; the reed
    # contact then closes: the door is shut
    shut_door(factory)
    assert g.state is DoorState.IDLE and g.door_is_open() is False
    yield g
    g.close()


def collect(gate: Gate) -> list[GateSignal]:
    signals: list[GateSignal] = []
    gate.listeners.append(signals.append)
    return signals


def open_door(factory: MockFactory) -> None:
    factory.pin(DOOR).drive_high()


def shut_door(factory: MockFactory) -> None:
    factory.pin(DOOR).drive_low()


def test_normal_passage_raises_nothing(
    gate: Gate, factory: MockFactory, clock: ManualScheduler
) -> None:
    signals = collect(gate)
    assert gate.door_is_open() is False and gate.state is DoorState.IDLE
    gate.admit()
    clock.advance(1.0)
    open_door(factory)
    assert gate.state is DoorState.OPEN
    clock.advance(2.0)
    shut_door(factory)
    clock.advance(30.0)
    assert signals == [] and gate.state is DoorState.IDLE
    assert factory.pin(17).state is False


def test_forced_door_alarms_until_shut(
    gate: Gate, factory: MockFactory, clock: ManualScheduler
) -> None:
    signals = collect(gate)
    open_door(factory)
    assert signals == [GateSignal(ReasonCode.DOOR_FORCED, "event")]
    assert gate.state is DoorState.FORCED
    red, buzzer = factory.pin(27), factory.pin(23)
    seen_red, seen_buzzer = set(), set()
    for _ in range(40):
        seen_red.add(red.state)
        seen_buzzer.add(buzzer.state)
        clock.advance(0.1)
    assert seen_red == {True, False}  # the red LED flashes ...
    assert seen_buzzer == {True, False}  # ... and the buzzer beeps, until the door shuts
    assert factory.pin(17).state is False  # an alarm never unlocks
    shut_door(factory)
    assert signals[-1] == GateSignal(ReasonCode.DOOR_CLOSED, "event")
    assert red.state is False and buzzer.state is False
    n = len(red.states)
    clock.advance(5.0)
    assert len(red.states) == n  # alarm pattern stopped


def test_held_open_alarm_after_configured_time(
    gate: Gate, factory: MockFactory, clock: ManualScheduler
) -> None:
    signals = collect(gate)
    gate.admit()
    clock.advance(0.5)
    open_door(factory)
    clock.advance(14.9)  # 15.4 s: open for 14.9 s
    assert signals == [] and factory.pin(17).state is False  # relocked at 3 s
    clock.advance(0.1)  # the scheduler's own wake-up raises it, no periodic tick needed
    assert signals == [GateSignal(ReasonCode.DOOR_HELD_OPEN, "event")]
    assert gate.state is DoorState.HELD_OPEN
    clock.advance(60.0)
    assert len(signals) == 1  # raised once
    shut_door(factory)
    assert signals[-1] == GateSignal(ReasonCode.DOOR_CLOSED, "event")
    assert gate.state is DoorState.IDLE


def test_exit_button_opens_and_reports_exit(
    gate: Gate, factory: MockFactory, clock: ManualScheduler
) -> None:
    signals = collect(gate)
    factory.pin(EXIT).drive_low()
    factory.pin(EXIT).drive_high()
    assert signals == [GateSignal(ReasonCode.EXIT, "exit")]
    assert factory.pin(17).state is True and gate.pulses == 1
    open_door(factory)  # leaving through the unlocked door is not forced
    shut_door(factory)
    clock.advance(3.0)
    assert factory.pin(17).state is False
    assert [s.reason for s in signals] == [ReasonCode.EXIT]


def test_door_found_open_at_start_is_held_open_not_forced(
    factory: MockFactory, clock: ManualScheduler
) -> None:
    cfg = replace(GateConfig(), door_pin=DOOR, held_open_s=15.0, input_bounce_s=0)
    with Gate(cfg, pin_factory=factory, scheduler=clock) as gate:
        signals = collect(gate)
        assert gate.state is DoorState.OPEN
        clock.advance(15.0)
        assert signals == [GateSignal(ReasonCode.DOOR_HELD_OPEN, "event")]


def test_normally_open_contact(factory: MockFactory, clock: ManualScheduler) -> None:
    cfg = replace(GateConfig(), door_pin=DOOR, door_contact="no", input_bounce_s=0)
    with Gate(cfg, pin_factory=factory, scheduler=clock) as gate:  # pulled up: shut
        signals = collect(gate)
        assert gate.door_is_open() is False and gate.state is DoorState.IDLE
        factory.pin(DOOR).drive_low()
        assert gate.door_is_open() is True
        assert signals == [GateSignal(ReasonCode.DOOR_FORCED, "event")]


def test_listener_failure_does_not_stop_the_gate(
    gate: Gate, factory: MockFactory, clock: ManualScheduler
) -> None:
    def broken(_sig: GateSignal) -> None:
        raise RuntimeError("screen gone")

    gate.listeners.append(broken)
    signals = collect(gate)
    factory.pin(EXIT).drive_low()
    assert factory.pin(17).state is True and [s.reason for s in signals] == [ReasonCode.EXIT]

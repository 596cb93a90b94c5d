"""The relay and indicators on gpiozero MockFactory pins, with a manual clock."""

from __future__ import annotations

from dataclasses import replace

import pytest
from gpiozero.pins.mock import MockFactory

from sentinel.config import GateConfig
from sentinel.errors import ConfigError, HardwareError
from sentinel.gate import Gate, make_pin_factory
from sentinel.gate.door import DoorState
from sentinel.gate.timers import ManualScheduler, ThreadScheduler


@pytest.fixture
def factory() -> MockFactory:
    return MockFactory()


@pytest.fixture
def clock() -> ManualScheduler:
    return ManualScheduler()


def make(factory: MockFactory, clock: ManualScheduler, **changes: object) -> Gate:
    return Gate(replace(GateConfig(), **changes), pin_factory=factory, scheduler=clock)


def test_relay_locked_at_start_pulses_on_admit_and_locks_after(
    factory: MockFactory, clock: ManualScheduler
) -> None:
    gate = make(factory, clock, pulse_s=3.0)
    relay = factory.pin(17)
    assert relay.state is False and not gate.unlocked
    gate.admit()
    assert relay.state is True and gate.unlocked and gate.state is DoorState.GRANTED
    assert factory.pin(22).state is True  # green while unlocked
    clock.advance(2.99)
    assert relay.state is True
    clock.advance(0.01)
    assert relay.state is False and gate.state is DoorState.IDLE
    assert factory.pin(22).state is False
    relay.assert_states([False, True, False])
    assert gate.pulses == 1
    gate.close()
    relay.assert_states([False, True, False])


def test_admit_while_open_extends_not_doubles(factory: MockFactory, clock: ManualScheduler) -> None:
    gate = make(factory, clock, pulse_s=3.0)
    relay = factory.pin(17)
    gate.admit()
    clock.advance(2.0)
    gate.admit()  # second visitor while unlocked: window now ends at 5.0
    clock.advance(2.0)  # t = 4.0, past the first window's end
    assert relay.state is True
    clock.advance(1.0)  # t = 5.0
    assert relay.state is False
    relay.assert_states([False, True, False])  # one pulse, not two
    assert (gate.pulses, gate.grants) == (1, 2)
    # after the window a new admit is a new pulse
    gate.admit()
    assert gate.pulses == 2 and relay.state is True
    gate.close()


def test_refuse_never_touches_relay_and_flashes_red(
    factory: MockFactory, clock: ManualScheduler
) -> None:
    gate = make(factory, clock)
    gate.refuse()
    red, buzzer = factory.pin(27), factory.pin(23)
    assert red.state is True and buzzer.state is True
    clock.advance(5.0)
    factory.pin(17).assert_states([False])
    red.assert_states([False, True, False, True, False, True, False])  # three flashes
    buzzer.assert_states([False, True, False, True, False])  # two beeps
    gate.close()


def test_admit_and_refuse_sound_different(factory: MockFactory, clock: ManualScheduler) -> None:
    gate = make(factory, clock)
    buzzer = factory.pin(23)
    gate.admit()
    clock.advance(0.14)
    assert buzzer.state is True
    clock.advance(0.01)
    assert buzzer.state is False
    clock.advance(5.0)
    buzzer.assert_states([False, True, False])  # one beep
    gate.close()


def test_fault_blinks_red_until_cleared(factory: MockFactory, clock: ManualScheduler) -> None:
    gate = make(factory, clock)
    red = factory.pin(27)
    gate.fault()
    changes = []
    for _ in range(20):
        clock.advance(0.25)
        changes.append(red.state)
    assert changes.count(True) == 5  # on 0.5 s of every 2 s
    gate.fault(False)
    assert red.state is False
    clock.advance(10.0)
    assert red.state is False
    gate.close()


def test_active_low_relay_inverts(factory: MockFactory, clock: ManualScheduler) -> None:
    gate = make(factory, clock, relay_active_high=False, pulse_s=10)
    pin = factory.pin(17)
    assert pin.state is True  # inactive = high for an active-low board
    gate.admit()
    assert pin.state is False
    clock.advance(10.0)
    assert pin.state is True
    gate.close()
    assert pin.state is True


@pytest.mark.parametrize(
    ("lock_type", "active_high", "locked_level", "stopped_level"),
    [
        ("fail-secure", True, False, False),  # energise to unlock; stop = unpowered = locked
        ("fail-secure", False, True, True),
        ("fail-safe", True, True, False),  # energised = locked; stop = unpowered = released
        ("fail-safe", False, False, True),
    ],
)
def test_lock_types_at_start_pulse_and_stop(
    factory: MockFactory,
    clock: ManualScheduler,
    lock_type: str,
    active_high: bool,
    locked_level: bool,
    stopped_level: bool,
) -> None:
    gate = make(factory, clock, lock_type=lock_type, relay_active_high=active_high, pulse_s=1.0)
    pin = factory.pin(17)
    assert pin.state is locked_level and not gate.unlocked
    pin.assert_states([locked_level] if locked_level is False else [False, True])
    gate.admit()
    assert pin.state is (not locked_level) and gate.unlocked
    clock.advance(1.0)
    assert pin.state is locked_level
    gate.close()
    assert pin.state is stopped_level  # de-energised: the lock type's power-loss state
    gate.close()  # idempotent
    assert pin.state is stopped_level


def test_fail_safe_never_released_between_start_and_lock(factory: MockFactory) -> None:
    """gpiozero applies initial_value as the pin becomes an output: no release glitch."""
    Gate(replace(GateConfig(), lock_type="fail-safe"), pin_factory=factory).close()
    states = [s.state for s in factory.pin(17).states]
    assert states[:2] == [False, True]  # mock pin's reset level, then energised (locked)


def test_commands_after_close_do_nothing(factory: MockFactory, clock: ManualScheduler) -> None:
    gate = make(factory, clock)
    gate.close()
    gate.admit()
    gate.refuse()
    gate.request_exit()
    gate.tick()
    assert factory.pin(17).state is False and gate.pulses == 0


def test_close_cancels_pending_relock_and_patterns(
    factory: MockFactory, clock: ManualScheduler
) -> None:
    gate = make(factory, clock)
    gate.admit()
    gate.refuse()
    gate.close()
    history = {p: list(factory.pin(p).states) for p in (17, 22, 27, 23)}
    assert all(h[-1].state is False for h in history.values())
    assert clock.pending() == 0  # the relock and the pattern steps were cancelled
    clock.advance(60.0)
    assert {p: list(factory.pin(p).states) for p in history} == history


def test_duplicate_pins_are_a_config_error(factory: MockFactory) -> None:
    with pytest.raises(ConfigError, match="gate.exit_pin and gate.door_pin both use GPIO 5"):
        Gate(replace(GateConfig(), door_pin=5, exit_pin=5), pin_factory=factory)


def test_bad_pin_is_one_hardware_error_and_releases_the_others(factory: MockFactory) -> None:
    with pytest.raises(HardwareError, match="gate.red_led_pin = 99"):
        Gate(replace(GateConfig(), red_led_pin=99), pin_factory=factory)
    Gate(GateConfig(), pin_factory=factory).close()  # relay and green were released


def test_without_buzzer(factory: MockFactory, clock: ManualScheduler) -> None:
    gate = make(factory, clock, buzzer_pin=None)
    gate.admit()
    gate.refuse()
    clock.advance(5.0)
    assert 23 not in factory.pins  # never claimed
    assert factory.pin(27).state is False
    gate.close()


def test_real_time_scheduler_relocks(factory: MockFactory) -> None:
    """The production scheduler: wait on the relock timer itself, not on a sleep."""
    gate = Gate(
        replace(GateConfig(), pulse_s=0.05), pin_factory=factory, scheduler=ThreadScheduler()
    )
    gate.admit()
    assert factory.pin(17).state is True
    timer = gate._wake
    assert timer is not None
    timer.join(5.0)  # type: ignore[attr-defined]
    assert factory.pin(17).state is False
    gate.close()


def test_real_pins_refused_where_there_are_none(tmp_path: object) -> None:
    import pathlib

    with pytest.raises(HardwareError, match="no .*gpiochip"):
        make_pin_factory("lgpio", dev=pathlib.Path(str(tmp_path)))
    with pytest.raises(HardwareError, match="unknown pin factory"):
        make_pin_factory("pigpio")

"""The relay pulse and indicators on gpiozero MockFactory pins."""

from __future__ import annotations

from dataclasses import replace

import pytest
from gpiozero.pins.mock import MockFactory

from sentinel.config import GateConfig
from sentinel.errors import HardwareError
from sentinel.gate import Gate, make_pin_factory


@pytest.fixture
def factory() -> MockFactory:
    return MockFactory()


def test_relay_locked_at_start_pulses_on_admit_and_locks_on_close(factory: MockFactory) -> None:
    cfg = GateConfig(pulse_s=0.05)
    pin = factory.pin(cfg.relay_pin)
    gate = Gate(cfg, pin_factory=factory)
    assert pin.state is False
    gate.admit()
    # the relay pulse is real: high now, back low when gpiozero's blink thread finishes
    assert pin.state is True
    gate.relay._blink_thread.join(1.0)
    assert pin.state is False
    pin.assert_states([False, True, False])
    gate.close()
    assert pin.state is False


def test_refuse_never_touches_relay(factory: MockFactory) -> None:
    cfg = GateConfig()
    gate = Gate(cfg, pin_factory=factory)
    gate.refuse()
    factory.pin(cfg.relay_pin).assert_states([False])
    assert factory.pin(cfg.red_led_pin).state is True
    gate.close()


def test_active_low_relay(factory: MockFactory) -> None:
    cfg = replace(GateConfig(), relay_active_high=False, pulse_s=10)
    pin = factory.pin(cfg.relay_pin)
    gate = Gate(cfg, pin_factory=factory)
    assert pin.state is True  # inactive = high for an active-low board
    gate.admit()
    assert pin.state is False
    gate.close()
    assert pin.state is True


def test_real_pins_refused_where_there_are_none(tmp_path: object) -> None:
    import pathlib

    if any(pathlib.Path("/dev").glob("gpiochip*")):
        pytest.skip("this machine has GPIO chips")
    with pytest.raises(HardwareError, match="no /dev/gpiochip"):
        make_pin_factory("lgpio")

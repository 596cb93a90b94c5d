"""The gate: relay pulse and indicator LEDs through gpiozero."""

from __future__ import annotations

from typing import Any

from gpiozero import LED, DigitalOutputDevice

from sentinel.config import GateConfig
from sentinel.gate.pins import make_pin_factory


class Gate:
    """Drives the lock relay and the green/red LEDs.

    ``open_for(pulse_s)`` energises the relay's *unlock* state for ``pulse_s`` seconds
    (gpiozero's background blink thread ends the pulse); the relay returns to the
    locked state after it, on ``close()`` and after an error.
    """

    def __init__(self, config: GateConfig, *, pin_factory: Any = None) -> None:
        self.config = config
        self.pin_factory = pin_factory or make_pin_factory(config.pin_factory)
        pf = self.pin_factory
        self.relay = DigitalOutputDevice(
            config.relay_pin,
            active_high=config.relay_active_high,
            initial_value=False,
            pin_factory=pf,
        )
        self.green = LED(config.green_led_pin, pin_factory=pf)
        self.red = LED(config.red_led_pin, pin_factory=pf)
        self.pulses = 0
        self._closed = False

    def admit(self) -> None:
        """Pulse the relay and show green."""
        self.pulses += 1
        self.red.off()
        self.green.blink(on_time=self.config.pulse_s, off_time=0, n=1)
        self.relay.blink(on_time=self.config.pulse_s, off_time=0, n=1)

    def refuse(self) -> None:
        """Show red; the relay stays locked."""
        self.green.off()
        self.red.blink(on_time=1.0, off_time=0, n=1)

    def lock(self) -> None:
        self.relay.off()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for dev in (self.relay, self.green, self.red):
            dev.off()
            dev.close()

    def __enter__(self) -> Gate:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

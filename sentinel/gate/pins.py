"""Pin factory choice: explicit in config, never guessed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sentinel.errors import HardwareError


def make_pin_factory(name: str) -> Any:
    """Return the gpiozero pin factory named in config ("mock", "lgpio", ...)."""
    if name == "mock":
        from gpiozero.pins.mock import MockFactory

        return MockFactory()
    if name == "lgpio":
        if not any(Path("/dev").glob("gpiochip*")):
            raise HardwareError(
                "gate.pin_factory = 'lgpio' but this machine has no /dev/gpiochip*: "
                "use pin_factory = 'mock' off a Raspberry Pi"
            )
        try:
            from gpiozero.pins.lgpio import LGPIOFactory
        except ImportError as exc:  # lgpio not installed
            raise HardwareError(f"lgpio pin factory unavailable: {exc}") from None
        try:
            return LGPIOFactory()
        except Exception as exc:  # lgpio raises its own error types
            raise HardwareError(f"cannot open GPIO chip: {exc}") from None
    raise HardwareError(f"unknown pin factory {name!r}")

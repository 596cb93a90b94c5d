"""Pin factory choice: explicit in config (``gate.pin_factory``), never guessed.

* ``mock``    gpiozero's MockFactory: the demo, the tests, a laptop.
* ``lgpio``   a Raspberry Pi through /dev/gpiochip* (every model, the Pi 5 included;
              Debian package ``python3-lgpio`` or ``pip install 'sentinel[pi]'``).
* ``rpigpio`` RPi.GPIO (older boards only, not the Pi 5).
* ``native``  gpiozero's pure-Python /dev/gpiomem driver (older boards only).

Asking for real pins where there are none stops with one clear ``HardwareError``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sentinel.errors import HardwareError

_REAL = {
    # name: (module, class, device nodes that must exist)
    "lgpio": ("gpiozero.pins.lgpio", "LGPIOFactory", "gpiochip*"),
    "rpigpio": ("gpiozero.pins.rpigpio", "RPiGPIOFactory", "gpiomem*"),
    "native": ("gpiozero.pins.native", "NativeFactory", "gpiomem*"),
}


def make_pin_factory(name: str, *, dev: Path = Path("/dev")) -> Any:
    """Return the gpiozero pin factory named in config ("mock", "lgpio", ...)."""
    if name == "mock":
        from gpiozero.pins.mock import MockFactory

        return MockFactory()
    if name not in _REAL:
        raise HardwareError(f"unknown pin factory {name!r} (mock, {', '.join(_REAL)})")
    module, cls, nodes = _REAL[name]
    if not any(dev.glob(nodes)):
        raise HardwareError(
            f"gate.pin_factory = {name!r} but this machine has no {dev}/{nodes}: "
            "use pin_factory = 'mock' off a Raspberry Pi"
        )
    try:
        import importlib

        factory_cls = getattr(importlib.import_module(module), cls)
    except ImportError as exc:  # the driver library is not installed
        raise HardwareError(f"{name} pin factory unavailable: {exc}") from None
    try:
        return factory_cls()
    except Exception as exc:  # drivers raise their own error types
        raise HardwareError(f"cannot open GPIO through {name}: {exc}") from None

"""Gate control: relay, indicators, inputs, the door state machine."""

from sentinel.gate.gate import Gate, GateSignal
from sentinel.gate.pins import make_pin_factory

__all__ = ["Gate", "GateSignal", "make_pin_factory"]

"""Sentinel: an offline check-in appliance for venue entrances."""

__version__ = "0.1.0"

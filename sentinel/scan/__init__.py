"""Frames → symbols: frame sources, decoder back-ends, presentation tracking."""

from sentinel.scan.decoders import BACKENDS, Scanner
from sentinel.scan.sources import FrameSource, open_source
from sentinel.scan.symbol import Symbol
from sentinel.scan.tracker import PresentationTracker

__all__ = ["BACKENDS", "FrameSource", "PresentationTracker", "Scanner", "Symbol", "open_source"]

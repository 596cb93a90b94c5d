"""Journal, retention purge and the audit chain."""

from sentinel.journal.journal import Event, Journal

__all__ = ["Event", "Journal"]

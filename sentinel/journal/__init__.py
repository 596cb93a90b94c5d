"""Journal, retention purge and the audit chain."""

from sentinel.journal.journal import Event, Journal, Personal

__all__ = ["Event", "Journal", "Personal"]

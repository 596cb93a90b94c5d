"""Journal, retention purge and the audit chain."""

from sentinel.journal.journal import EVENT_COLUMNS, Event, Journal, Personal

__all__ = ["EVENT_COLUMNS", "Event", "Journal", "Personal"]

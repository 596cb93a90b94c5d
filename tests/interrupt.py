"""Ctrl-C at a chosen point inside SQLite work, for tests of interrupt paths.

A real SIGINT is sent to this process by SQLite's own progress handler, at every
virtual-machine step of every statement on ``conn``: the handler is libc's ``kill``
bound to its arguments (through ctypes: ``os.kill`` would run the Python signal handler
at once, inside SQLite's callback, which turns any exception into "interrupted"), so no
Python code runs inside SQLite, and the signal reaches Python when control is back in
the interpreter, right after the statement.  The Python handler lets it pass until that
happens inside the function named ``function`` (so the interrupt lands after a
statement that function runs, not where SQLite's step counts happen to fall), then
raises ``KeyboardInterrupt`` once.  Where it landed ("function:line") is recorded.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import sqlite3
from collections.abc import Iterator
from types import FrameType


@contextlib.contextmanager
def sigint_during(conn: sqlite3.Connection, function: str) -> Iterator[list[str]]:
    landed: list[str] = []

    def on_sigint(_signum: int, frame: FrameType | None) -> None:
        if landed or frame is None or frame.f_code.co_name != function:
            return  # elsewhere (or already fired): let this one pass
        conn.set_progress_handler(None, 0)
        landed.append(f"{function}:{frame.f_lineno}")
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    kill = ctypes.CDLL(None, use_errno=True).kill
    conn.set_progress_handler(functools.partial(kill, os.getpid(), signal.SIGINT), 1)
    try:
        yield landed
    finally:
        conn.set_progress_handler(None, 0)
        signal.signal(signal.SIGINT, previous)

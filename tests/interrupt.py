"""Ctrl-C at a chosen point inside SQLite work, for tests of interrupt paths.

A real SIGINT is sent to this process by SQLite's own progress handler, which SQLite
calls every ``opcodes`` virtual-machine steps of a statement: the handler is libc's
``kill`` bound to its arguments (through ctypes: ``os.kill`` would run the Python signal
handler at once, inside SQLite's callback, which turns any exception into "interrupted"),
so no Python code runs inside SQLite and the signal turns into ``KeyboardInterrupt`` as
soon as control is back in Python — right
after the first statement long enough to reach ``opcodes`` steps (a BEGIN or COMMIT takes
about 3-5, a SELECT or DELETE on a key 10-20).  The interrupt fires once; the name of the
Python function it landed in is recorded, so a test can check it hit the step it means.
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
def sigint_during(conn: sqlite3.Connection, opcodes: int) -> Iterator[list[str]]:
    landed: list[str] = []

    def on_sigint(_signum: int, frame: FrameType | None) -> None:
        conn.set_progress_handler(None, 0)
        signal.signal(signal.SIGINT, previous)
        landed.append(frame.f_code.co_name if frame else "?")
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    kill = ctypes.CDLL(None, use_errno=True).kill
    conn.set_progress_handler(functools.partial(kill, os.getpid(), signal.SIGINT), opcodes)
    try:
        yield landed
    finally:
        conn.set_progress_handler(None, 0)
        signal.signal(signal.SIGINT, previous)

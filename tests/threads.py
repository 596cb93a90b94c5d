"""Running test steps in threads of their own (the lock tests of the store and journal)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


def run_together(*calls: Callable[[], Any]) -> list[Any]:
    """Run each call in its own thread; each one's result or the exception it raised.
    Every thread must end within 10 s (a lock held for ever fails the test, not hangs it)."""
    out: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            out[i] = calls[i]()
        except Exception as exc:  # noqa: BLE001 - the test looks at it
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert not any(t.is_alive() for t in threads)
    return out

"""One progress bar for every long command (publish build, sync of a large bundle, purge,
central imports): ``tqdm`` on a terminal, nothing at all otherwise (logs, systemd, tests).

    with progress_bar(total, "apply status set", unit="entries") as bar:
        for chunk in chunks:
            ...
            bar.update(len(chunk))

``tqdm`` was chosen by measurement over ``rich``: about 1 µs against 4 µs per update, and
no dependencies of its own (README, dependencies).  It is imported only when a bar shows.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import IO, Protocol


class Bar(Protocol):
    def update(self, n: int = 1) -> object: ...


class _Quiet:
    def update(self, n: int = 1) -> None:
        pass


def wanted(stream: IO[str] | None = None) -> bool:
    """A bar shows on a terminal; ``SENTINEL_PROGRESS=0`` / ``=1`` overrides."""
    env = os.environ.get("SENTINEL_PROGRESS")
    if env in ("0", "1"):
        return env == "1"
    s = stream if stream is not None else sys.stderr
    try:
        return s.isatty()
    except (AttributeError, ValueError):
        return False


@contextlib.contextmanager
def progress_bar(
    total: int | None, desc: str, unit: str = "", *, stream: IO[str] | None = None
) -> Iterator[Bar]:
    """A bar over ``total`` units (bytes: ``unit="B"`` scales them), or a silent one."""
    if not wanted(stream):
        yield _Quiet()
        return
    from tqdm import tqdm

    scale = unit == "B"
    with tqdm(
        total=total,
        desc=desc,
        unit=unit or "it",
        unit_scale=scale,
        unit_divisor=1024 if scale else 1000,
        file=stream if stream is not None else sys.stderr,
        mininterval=0.25,
        dynamic_ncols=True,
        leave=True,
    ) as bar:
        yield bar

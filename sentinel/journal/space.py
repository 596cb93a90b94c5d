"""Free-space guard for the data directory, and start-up clean-up of crash leftovers.

A full disk must never stop the gate (``Pipeline.notify`` turns a failed journal write
into a ``DISK_FULL`` device event), and SQLite must be kept out of the region where it
can no longer work: with a few tens of KiB left on ext4, opening a WAL database whose
``-shm`` file has to be created maps a file whose blocks cannot be allocated, and the
first touch of that page kills the process with SIGBUS (SQLite's unix VFS maps the
wal-index with ``mmap``; see sqlite.org/wal.html, "Implementation Of Shared-Memory For
The WAL-Index").  So:

- ``write_reserve_bytes``: below this much free space the journal refuses new events
  *before* SQLite touches the disk (``DiskFull``, a ``JournalError``); what is left stays
  for the purge, the audit log and the event that says so once space is back.
- ``open_floor_bytes``: below this, no database is opened at all (clear error instead of
  SIGBUS).  The purge runs down to this floor: it is how space comes back.

Both are module-level defaults a ``Journal`` copies; tests and the config may lower them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import sqlite3
from pathlib import Path

from sentinel.errors import JournalError

WRITE_RESERVE_BYTES = 4 * 1024 * 1024
OPEN_FLOOR_BYTES = 256 * 1024

# Temp files written by _write_atomic (".<name>.<pid>.tmp") and SQLite's own.
_TMP = re.compile(r"^\.(?P<name>.+?)\.(?P<pid>\d+)(?:\.\d+)?\.(?:tmp|new)$")


class DiskFull(JournalError):
    """The device's disk has no room for this write (the gate keeps working)."""


def free_bytes(path: str | Path) -> int:
    """Bytes an unprivileged writer may still use on the file system holding ``path``."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    st = os.statvfs(p)
    return st.f_bavail * st.f_frsize


def ensure_room(path: str | Path, need_bytes: int, what: str) -> None:
    """Raise DiskFull naming ``what`` when fewer than ``need_bytes`` are free at ``path``."""
    free = free_bytes(path)
    if free < need_bytes:
        raise DiskFull(
            f"{path}: {what}: disk full on the device ({free} bytes free, "
            f"{need_bytes} bytes kept in reserve)"
        )


def is_disk_full(exc: BaseException) -> bool:
    """True for SQLITE_FULL, ENOSPC/EDQUOT and our own DiskFull."""
    if isinstance(exc, DiskFull):
        return True
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        return code == sqlite3.SQLITE_FULL or "disk is full" in str(exc)
    return False


def rollback_quietly(conn: sqlite3.Connection) -> None:
    """ROLLBACK if a transaction is still open.

    SQLite rolls the transaction back itself on SQLITE_FULL and some I/O errors; an
    unconditional ROLLBACK then raises "cannot rollback - no transaction is active",
    which would replace the error that matters.
    """
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):  # the caller re-raises the first error
            conn.execute("ROLLBACK")


def clean_temp_files(data_dir: str | Path) -> list[Path]:
    """Remove ``.<name>.<pid>[.<thread>].tmp`` leftovers whose writing process is gone; return them.

    ``_write_atomic`` writes such a file and renames it into place; a kill between the
    two leaves it behind.  A file of a process still alive (another CLI writing right
    now) is left alone.
    """
    removed: list[Path] = []
    d = Path(data_dir)
    if not d.is_dir():
        return removed
    for p in d.iterdir():
        m = _TMP.match(p.name)
        if m is None or _alive(int(m.group("pid"))):
            continue
        try:
            p.unlink()
        except FileNotFoundError:
            continue
        removed.append(p)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

"""Private data files and bounded reads of files an attacker may have placed.

* ``private_dir`` / ``private_file``: the data directory is 0700 and every data file 0600
  whatever the caller's umask (the systemd units set ``UMask=0077``, but ``sentinel user
  add``, ``make demo`` or ``sentinel sync`` run under the shell's umask).  SQLite creates
  its ``-wal``/``-journal`` files with the database file's mode, so a 0600 database keeps
  them private too.
* ``read_bounded``: read a file that must be a regular file of at most ``cap`` bytes.  It
  is opened with ``O_NOFOLLOW | O_NONBLOCK`` and checked with ``fstat`` (so a FIFO, a
  device such as ``/dev/zero`` or a symlink cannot hang or exhaust memory), and at most
  ``cap + 1`` bytes are read (``stat().st_size`` is 0 for devices and FIFOs).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

DIR_MODE = 0o700
FILE_MODE = 0o600


class UnsafeFileError(OSError):
    """Not a regular file, a symlink, outside its folder, or larger than its cap."""


def private_dir(path: str | Path) -> Path:
    """Create ``path`` (and parents) and make the last component 0700."""
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    with contextlib.suppress(PermissionError):  # not ours (e.g. /tmp): leave it
        if stat.S_IMODE(p.stat().st_mode) != DIR_MODE:
            p.chmod(DIR_MODE)
    return p


def private_file(path: str | Path) -> Path:
    """Create ``path`` empty with mode 0600 if missing; tighten an existing one to 0600.

    Call before ``sqlite3.connect``, which would otherwise create the file with the umask.
    """
    p = Path(path)
    private_dir(p.parent)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) & 0o077:
            os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm", "-journal"):  # left over from an older, looser version
        side = p.with_name(p.name + suffix)
        with contextlib.suppress(OSError):
            if stat.S_IMODE(side.lstat().st_mode) & 0o077:
                side.chmod(FILE_MODE)
    return p


@contextlib.contextmanager
def open_regular(path: str | Path, *, within: str | Path | None = None) -> Iterator[BinaryIO]:
    """Open ``path`` for reading only if it is a regular file (no FIFO, device, symlink).

    ``within``: the resolved path must also lie inside this folder (no ``..`` escapes).
    """
    p = Path(path)
    if within is not None:
        root = Path(within).resolve()
        if not p.resolve().is_relative_to(root):
            raise UnsafeFileError(f"{p} lies outside {root}")
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # the last component is a symlink
            raise UnsafeFileError(f"{p} is a symbolic link") from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnsafeFileError(f"{p} is not a regular file")
        os.set_blocking(fd, True)
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with f:
        yield f


def read_bounded(path: str | Path, cap: int, *, within: str | Path | None = None) -> bytes:
    """The bytes of regular file ``path``; UnsafeFileError if it holds more than ``cap``."""
    with open_regular(path, within=within) as f:
        data = f.read(cap + 1)
    if len(data) > cap:
        raise UnsafeFileError(f"{path} is larger than {cap} bytes")
    return data

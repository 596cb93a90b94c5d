"""Small real file systems for disk-full tests: a tmpfs with ``size=`` (needs root, as
CI runs) and a filler that eats free space down to a target.

Off CI, a machine that may not mount skips with the reason; on CI (CI=true) the mount
must work and a failure fails the test.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sentinel.journal.space import free_bytes


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    """Mount a tmpfs of ``size`` (e.g. "4m") at ``where``; unmount afterwards."""
    where.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"cannot mount a tmpfs on CI: {r.stderr.strip()}")
        pytest.skip(f"mounting a tmpfs is not permitted here: {r.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(path: Path, leave_bytes: int) -> Path:
    """Write a filler file beside ``path`` until at most ``leave_bytes`` are free."""
    filler = path / ".filler"
    with filler.open("ab") as f:
        while (free := free_bytes(path)) > leave_bytes:
            chunk = min(1 << 20, max(4096, free - leave_bytes))
            try:
                f.write(b"\0" * chunk)
                f.flush()
            except OSError:
                break
    return filler


@contextlib.contextmanager
def ext4(where: Path, size_mb: int) -> Iterator[Path]:
    """Mount a fresh ext4 image of ``size_mb`` MiB on a loop device at ``where``."""
    img = where.with_suffix(".img")
    with img.open("wb") as f:
        f.truncate(size_mb * 1024 * 1024)
    mk = subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", str(img)], capture_output=True)
    where.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(
        ["mount", "-o", "loop", str(img), str(where)], capture_output=True, text=True
    )
    if mk.returncode != 0 or r.returncode != 0:
        why = (mk.stderr.decode() if mk.returncode else r.stderr).strip()
        if os.environ.get("CI"):
            pytest.fail(f"cannot make and loop-mount an ext4 image on CI: {why}")
        pytest.skip(f"loop-mounting ext4 is not permitted here: {why}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)
        img.unlink(missing_ok=True)

"""The device's Ed25519 signing key (``device_key.pem``) and atomic small-file writes.

One key per device, whatever starts first: the daemon, the purge timer, ``sentinel
sync`` or ``sentinel enroll`` may all be the first user of a fresh data directory.
"""

from __future__ import annotations

import fcntl
import os
import stat
import threading
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sentinel.errors import JournalError

__all__ = ["load_or_create_device_key"]


def _write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Temp file in the same directory, fsync, os.replace, fsync the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


_MAX_KEY_BYTES = 16 * 1024  # a PKCS#8 Ed25519 PEM is 119 bytes


def _read_key_file(path: Path) -> bytes:
    """The key file's bytes: a regular file of bounded size (never blocks on a FIFO)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise JournalError(f"{path}: is a directory, not the device key")
        if not stat.S_ISREG(st.st_mode):
            raise JournalError(f"{path}: not a regular file, refusing to read the device key")
        if st.st_size > _MAX_KEY_BYTES:
            raise JournalError(f"{path}: {st.st_size} bytes, too large for a device key")
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(_MAX_KEY_BYTES + 1)
    finally:
        os.close(fd)


def _load_device_key(path: Path) -> Ed25519PrivateKey:
    data = _read_key_file(path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        # Never replaced automatically: the audit chain and the enrolment name this key.
        raise JournalError(
            f"{path}: the device key is damaged ({type(e).__name__}); restore it from a "
            "backup, or move it aside and enrol the device again"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise JournalError(f"{path}: not an Ed25519 private key")
    return key


def load_or_create_device_key(path: Path) -> Ed25519PrivateKey:
    """The device's Ed25519 key (PEM, mode 0600), created on first use.

    Concurrent first starts (daemon, purge timer, ``sentinel sync``) end with one key:
    creation holds an exclusive lock beside the key, and the key file is put in place
    with ``link`` (fails if it exists) rather than ``rename`` (would replace a key another
    process already signs with).
    """
    try:
        return _load_device_key(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(f".{path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if path.exists():
            return _load_device_key(path)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            tfd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(tfd, "wb") as f:
                f.write(pem)
                f.flush()
                os.fsync(f.fileno())
            os.link(tmp, path)
        except FileExistsError:
            return _load_device_key(path)
        finally:
            tmp.unlink(missing_ok=True)
        _fsync_dir(path.parent)
        return key
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    dfd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)

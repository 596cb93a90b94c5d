"""A FUSE file system that loses what a power cut loses: everything not yet synced.

Modelled on SQLite's crash-simulating test VFS (``src/test6.c`` in the SQLite source,
"crash" VFS used by the ``crash*.test`` scripts: writes go to a cache and only reach the
"disk" on xSync; at the simulated crash each unsynced sector is either written, lost or
— with reordering — written in any order).  Here the same model sits under the kernel,
so real processes with the real SQLite library run on it:

- File data: every ``write``/``truncate`` changes the live copy at once (readers see it,
  as with a page cache) and is logged; ``fsync``/``fdatasync`` of the file makes its live
  copy durable and clears its log.
- Names (create, unlink, rename, link, mkdir, rmdir, chmod): live at once; durable at
  the next ``fsync`` of *any* file or directory — as in ext4's ordered mode, where a
  fsync commits the whole running journal transaction, names included.
- ``cut``: live := durable.  With ``reorder`` the unsynced writes are split into 512-byte
  sectors and a random subset is applied in random order first (torn and reordered
  writes), as test6.c does with ``SQLITE_IOCAP`` off.

Not modelled: a sector that is written as garbage (test6.c can do that too); metadata
written without any fsync (we lose it, a real journaling FS may keep some).

The server runs as its own process (``python -m tests.powercut_fs MOUNT``) and is driven
over stdin/stdout by ``PowercutFS``: the mount is up when it prints ``ready``; a cut is
"kill every writer, unmount (the kernel hands its remaining dirty pages over — they are
unsynced, so lost), ``cut``, mount again".  Unmounting also drops the kernel's page cache,
so nothing a reader sees after the cut comes from before it.  Needs ``/dev/fuse``,
``fusermount3`` (Debian fuse3) and ``mfusepy``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import shutil
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SECTOR = 512


@dataclass
class _Inode:
    mode: int
    live: bytearray = field(default_factory=bytearray)
    durable: bytes = b""
    log: list[tuple[int, bytes | int]] = field(default_factory=list)  # (offset, data) / (-1, len)

    def write(self, offset: int, data: bytes) -> None:
        end = offset + len(data)
        if end > len(self.live):
            self.live.extend(b"\0" * (end - len(self.live)))
        self.live[offset:end] = data
        self.log.append((offset, data))

    def truncate(self, length: int) -> None:
        if length < len(self.live):
            del self.live[length:]
        else:
            self.live.extend(b"\0" * (length - len(self.live)))
        self.log.append((-1, length))

    def sync(self) -> None:
        self.durable = bytes(self.live)
        self.log.clear()

    def cut(self, rng: random.Random | None) -> None:
        data = bytearray(self.durable)
        if rng is not None and self.log:
            ops: list[tuple[int, bytes | int]] = []
            for off, d in self.log:
                if off < 0:
                    ops.append((off, d))
                    continue
                assert isinstance(d, bytes)
                for s in range(0, len(d), SECTOR):
                    ops.append((off + s, d[s : s + SECTOR]))
            rng.shuffle(ops)
            for off, d in ops[: rng.randint(0, len(ops))]:
                if off < 0:
                    assert isinstance(d, int)
                    del data[d:]
                    continue
                assert isinstance(d, bytes)
                if off + len(d) > len(data):
                    data.extend(b"\0" * (off + len(d) - len(data)))
                data[off : off + len(d)] = d
        self.live = data
        self.log.clear()


class State:
    """The whole file system: inodes, live and durable names; thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.inodes: dict[int, _Inode] = {1: _Inode(stat.S_IFDIR | 0o755)}
        self.names: dict[str, int] = {"/": 1}
        self.durable_names: dict[str, int] = {"/": 1}
        self.durable_modes: dict[int, int] = {1: stat.S_IFDIR | 0o755}
        self.next_ino = 2
        self.syncs = 0

    def commit_names(self) -> None:
        self.durable_names = dict(self.names)
        self.durable_modes = {i: n.mode for i, n in self.inodes.items()}

    def cut(self, rng: random.Random | None) -> None:
        with self.lock:
            self.names = dict(self.durable_names)
            live = set(self.names.values())
            for ino in list(self.inodes):
                if ino not in live:
                    del self.inodes[ino]
                else:
                    node = self.inodes[ino]
                    node.mode = self.durable_modes.get(ino, node.mode)
                    node.cut(rng)


def _ops(state: State) -> Any:
    from mfusepy import FuseOSError, Operations

    def err(code: int) -> Exception:
        return FuseOSError(code)

    class Ops(Operations):  # type: ignore[misc]
        use_ns = True

        def _node(self, path: str) -> _Inode:
            ino = state.names.get(path)
            if ino is None:
                raise err(errno.ENOENT)
            return state.inodes[ino]

        def _file(self, path: str | None, fh: int | None) -> _Inode:
            # the handle (an inode number) first: it outlives a rename or unlink
            if fh and fh in state.inodes:
                return state.inodes[fh]
            if path is None:
                raise err(errno.EBADF)
            return self._node(path)

        def _parent_ok(self, path: str) -> None:
            parent = os.path.dirname(path) or "/"
            ino = state.names.get(parent)
            if ino is None or not stat.S_ISDIR(state.inodes[ino].mode):
                raise err(errno.ENOENT)

        def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
            with state.lock:
                n = self._node(path)
                now = time.time_ns()
                nlink = sum(1 for i in state.names.values() if i == state.names[path])
                return {
                    "st_mode": n.mode,
                    "st_nlink": max(1, nlink) + (1 if stat.S_ISDIR(n.mode) else 0),
                    "st_size": len(n.live),
                    "st_uid": os.getuid(),
                    "st_gid": os.getgid(),
                    "st_atime": now,
                    "st_mtime": now,
                    "st_ctime": now,
                    "st_ino": state.names[path],
                }

        def readdir(self, path: str, fh: int) -> list[str]:
            with state.lock:
                self._node(path)
                pre = path.rstrip("/") + "/"
                out = [".", ".."]
                for p in state.names:
                    if p != "/" and p.startswith(pre) and "/" not in p[len(pre) :]:
                        out.append(p[len(pre) :])
                return out

        def _new(self, path: str, mode: int) -> int:
            self._parent_ok(path)
            ino = state.next_ino
            state.next_ino += 1
            state.inodes[ino] = _Inode(mode)
            state.names[path] = ino
            return ino

        def create(self, path: str, mode: int, fi: Any = None) -> int:
            with state.lock:
                if path not in state.names:
                    return self._new(path, stat.S_IFREG | (mode & 0o7777))
                return state.names[path]

        def mknod(self, path: str, mode: int, dev: int) -> int:
            with state.lock:
                self._new(path, mode)
                return 0

        def mkdir(self, path: str, mode: int) -> int:
            with state.lock:
                if path in state.names:
                    raise err(errno.EEXIST)
                self._new(path, stat.S_IFDIR | (mode & 0o7777))
                return 0

        def rmdir(self, path: str) -> int:
            with state.lock:
                self._node(path)
                pre = path + "/"
                if any(p.startswith(pre) for p in state.names):
                    raise err(errno.ENOTEMPTY)
                del state.names[path]
                return 0

        def unlink(self, path: str) -> int:
            with state.lock:
                self._node(path)
                del state.names[path]
                return 0

        def link(self, target: str, source: str) -> int:
            with state.lock:
                if target in state.names:
                    raise err(errno.EEXIST)
                self._parent_ok(target)
                state.names[target] = state.names.get(source, 0)
                if not state.names[target]:
                    del state.names[target]
                    raise err(errno.ENOENT)
                return 0

        def rename(self, old: str, new: str) -> int:
            with state.lock:
                self._node(old)
                self._parent_ok(new)
                pre = old + "/"
                moved = {p: i for p, i in state.names.items() if p == old or p.startswith(pre)}
                for p in moved:
                    del state.names[p]
                for p in [p for p in state.names if p == new or p.startswith(new + "/")]:
                    del state.names[p]
                for p, i in moved.items():
                    state.names[new + p[len(old) :]] = i
                return 0

        def chmod(self, path: str, mode: int) -> int:
            with state.lock:
                n = self._node(path)
                n.mode = (n.mode & ~0o7777) | (mode & 0o7777)
                return 0

        def chown(self, path: str, uid: int, gid: int) -> int:
            return 0

        def utimens(self, path: str, times: Any = None) -> int:
            return 0

        def open(self, path: str, flags: int) -> int:
            with state.lock:
                self._node(path)
                return state.names[path]

        def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
            with state.lock:
                return bytes(self._file(path, fh).live[offset : offset + size])

        def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
            with state.lock:
                self._file(path, fh).write(offset, bytes(data))
                return len(data)

        def truncate(self, path: str, length: int, fh: int | None = None) -> int:
            with state.lock:
                self._file(path, fh).truncate(length)
                return 0

        def fsync(self, path: str, datasync: int, fh: int) -> int:
            with state.lock:
                self._file(path, fh).sync()
                state.commit_names()
                state.syncs += 1
                return 0

        def fsyncdir(self, path: str, datasync: int, fh: int) -> int:
            with state.lock:
                state.commit_names()
                return 0

        def flush(self, path: str, fh: int) -> int:
            return 0

        def release(self, path: str, fh: int) -> int:
            return 0

        def statfs(self, path: str) -> dict[str, int]:
            return {
                "f_bsize": 4096,
                "f_frsize": 4096,
                "f_blocks": 1 << 20,
                "f_bfree": 1 << 19,
                "f_bavail": 1 << 19,
                "f_files": 1 << 16,
                "f_ffree": 1 << 15,
                "f_namemax": 255,
            }

        def init(self, path: str) -> None:
            print("ready", flush=True)

    return Ops()


def serve(mount: str) -> None:
    """Mount, serve until unmounted, then obey one stdin line: cut [seed] | quit."""
    from mfusepy import FUSE

    state = State()
    while True:
        FUSE(
            _ops(state),
            mount,
            foreground=True,
            nothreads=True,
            attr_timeout=0,
            entry_timeout=0,
            negative_timeout=0,
            hard_remove=True,
        )
        line = sys.stdin.readline().split()
        if not line or line[0] == "quit":
            return
        if line[0] == "cut":
            rng = random.Random(int(line[1])) if len(line) > 1 else None
            state.cut(rng)
        print(f"cut syncs={state.syncs}", file=sys.stderr, flush=True)


class PowercutFS:
    """Drive a server process: ``start()``, ``cut(reorder_seed=None)``, ``close()``."""

    def __init__(self, mount: Path) -> None:
        self.mount = Path(mount)
        self.proc: subprocess.Popen[str] | None = None

    @staticmethod
    def available() -> str:
        """ "" when this machine can run it, else the reason it cannot."""
        if not os.path.exists("/dev/fuse"):
            return "no /dev/fuse"
        if shutil.which("fusermount3") is None:
            return "no fusermount3 (Debian package fuse3)"
        try:
            import mfusepy  # noqa: F401
        except (ImportError, OSError) as exc:
            return f"mfusepy unusable: {exc}"
        return ""

    def start(self) -> PowercutFS:
        self.mount.mkdir(parents=True, exist_ok=True)
        root = str(Path(__file__).resolve().parents[1])
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"import sys; sys.path.insert(0, {root!r}); "
                "from tests.powercut_fs import serve; serve(sys.argv[1])",
                str(self.mount),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"power-cut file system did not mount ({line!r})")

    def _unmount(self) -> None:
        for _ in range(50):
            r = subprocess.run(["fusermount3", "-u", str(self.mount)], capture_output=True)
            if r.returncode == 0:
                return
            time.sleep(0.1)  # a killed writer's files are still being closed
        raise RuntimeError(f"cannot unmount {self.mount}: {r.stderr.decode().strip()}")

    def cut(self, reorder_seed: int | None = None) -> None:
        """Power cut: every writer must be dead (SIGKILLed and reaped) before this."""
        assert self.proc is not None and self.proc.stdin is not None
        self._unmount()
        cmd = "cut" if reorder_seed is None else f"cut {reorder_seed}"
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        self._wait_ready()

    def close(self) -> None:
        if self.proc is None:
            return
        try:
            self._unmount()
        except RuntimeError:
            subprocess.run(["fusermount3", "-uz", str(self.mount)], capture_output=True)
        assert self.proc.stdin is not None
        with contextlib.suppress(OSError):
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()
        self.proc = None

    def __enter__(self) -> PowercutFS:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":
    serve(sys.argv[1])

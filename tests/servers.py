"""Real servers for tests, on loopback only: mosquitto and a throwaway PostgreSQL cluster."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout_s: float = 20.0) -> None:
    """Block until something accepts on 127.0.0.1:port (readiness, not a fixed sleep)."""
    end = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > end:
                raise TimeoutError(f"nothing listening on 127.0.0.1:{port}") from None
            time.sleep(0.05)


def mosquitto_path() -> str | None:
    return shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None
    )


class Mosquitto:
    """A mosquitto broker on 127.0.0.1 with persistence, restartable on the same port."""

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        *,
        auth_dir: Path | None = None,
        extra: str = "",
    ) -> None:
        """``auth_dir``: per-device passwords and ACL from ``sentinel.fleet.brokerauth``
        (anonymous clients refused); ``extra``: more mosquitto.conf lines."""
        self.workdir = workdir
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        self.conf = workdir / "mosquitto.conf"
        if auth_dir is not None:
            from sentinel.fleet.brokerauth import broker_conf

            access = broker_conf(auth_dir)
        else:
            access = "allow_anonymous true\n"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n{access}"
            f"persistence true\npersistence_location {workdir}/\nautosave_interval 1\n"
            "max_queued_messages 0\nlog_dest none\n"
            + ("user root\n" if os.geteuid() == 0 else "")
            + extra
        )

    def start(self) -> None:
        exe = mosquitto_path()
        assert exe, "mosquitto is not installed (scripts/setup.sh --test installs it)"
        self.proc = subprocess.Popen(
            [exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_port(self.port)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=20)
        self.proc = None


def pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@contextmanager
def postgres(durable: bool = False) -> Iterator[str]:
    """A throwaway PostgreSQL cluster (initdb + pg_ctl) on a Unix socket and 127.0.0.1.

    ``durable``: PostgreSQL's own defaults (fsync and synchronous_commit on: a committed
    row survives a crash of the machine), for benchmarks; else fsync off (tests)."""
    bindir = pg_bin()
    assert bindir, "PostgreSQL server is not installed (scripts/setup.sh --test installs it)"
    base = Path(tempfile.mkdtemp(prefix="sentinel-pg-"))
    run_as: list[str] = []
    user = pwd.getpwuid(os.geteuid()).pw_name
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        user = "postgres"
        pw = pwd.getpwnam(user)
        os.chown(base, pw.pw_uid, pw.pw_gid)
        run_as = ["runuser", "-u", user, "--"]
    data = base / "data"
    port = free_port()
    subprocess.run(
        run_as + [str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", user, "--no-sync"],
        check=True,
        capture_output=True,
    )
    opts = f"-k {base} -p {port} -c listen_addresses=127.0.0.1"
    if not durable:
        opts += " -c fsync=off"
    subprocess.run(
        run_as
        + [
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            opts,
            "-w",
            "-l",
            str(base / "log"),
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"host={base} port={port} user={user} dbname=postgres"
    finally:
        subprocess.run(
            run_as + [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(base, ignore_errors=True)

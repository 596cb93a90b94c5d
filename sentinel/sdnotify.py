"""A tiny client for systemd's notify protocol (sd_notify(3)), no dependency needed.

systemd passes ``NOTIFY_SOCKET`` to a ``Type=notify`` service: a path of an AF_UNIX
datagram socket, or an abstract socket name written with a leading ``@``.  The service
sends newline-separated ``KEY=VALUE`` assignments as one datagram: ``READY=1`` once it
serves, ``WATCHDOG=1`` at least every ``WatchdogSec`` (systemd passes the interval as
``WATCHDOG_USEC`` and the pid it applies to as ``WATCHDOG_PID``), ``STOPPING=1`` on the
way down, ``STATUS=...`` free text for ``systemctl status``.

Sending never raises: a service must not die because its supervisor is gone.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass

log = logging.getLogger(__name__)

# Without a systemd watchdog, how often the daemon would ping anyway (harmless no-ops).
DEFAULT_WATCHDOG_INTERVAL_S = 5.0


def socket_address(value: str) -> str | None:
    """The address to ``sendto`` for a NOTIFY_SOCKET value; None when unusable."""
    if not value:
        return None
    if value.startswith("@"):
        # Abstract namespace: a leading NUL byte instead of "@" (unix(7)).
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None  # vsock ("vsock:CID:PORT") and relative paths are not supported here


def watchdog_interval_s(env: Mapping[str, str] | None = None, pid: int | None = None) -> float:
    """Seconds between WATCHDOG=1 pings: half of WatchdogSec, 0.0 when no watchdog is set.

    Follows sd_watchdog_enabled(3): WATCHDOG_USEC gives the timeout; when WATCHDOG_PID
    is set it must name this process.
    """
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC", "")
    owner = env.get("WATCHDOG_PID", "")
    if owner and owner.isdigit() and int(owner) != (os.getpid() if pid is None else pid):
        return 0.0
    if not usec.isdigit() or int(usec) == 0:
        return 0.0
    return int(usec) / 1_000_000 / 2


class Notifier:
    """Sends notify messages to one socket; ``send`` is the daemon's ``notify`` callable."""

    def __init__(self, address: str | None) -> None:
        self.address = address
        self._sock: socket.socket | None = None
        self.failures = 0

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, message: str) -> bool:
        """Send one datagram (e.g. ``"READY=1"``); False when not sent, never raises."""
        if self.address is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(message.encode("utf-8"), self.address)
            return True
        except OSError as exc:
            self.failures += 1
            if self.failures == 1:  # say it once, not on every watchdog ping
                log.warning("sd_notify to %r failed: %s", self.address, exc)
            return False

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> Notifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def from_env(env: Mapping[str, str] | None = None) -> Notifier:
    """A Notifier for ``NOTIFY_SOCKET`` (disabled when unset or unusable)."""
    env = os.environ if env is None else env
    return Notifier(socket_address(env.get("NOTIFY_SOCKET", "")))


def notify(message: str, env: Mapping[str, str] | None = None) -> bool:
    """One-shot sd_notify: open, send, close."""
    with from_env(env) as n:
        return n.send(message)


class WatchdogPinger:
    """Rate-limits WATCHDOG=1: at most one ping per ``interval_s`` of monotonic time."""

    def __init__(
        self,
        notify: Callable[[str], object],
        interval_s: float,
        *,
        monotonic: Callable[[], float],
    ) -> None:
        self.notify = notify
        self.interval_s = interval_s
        self.monotonic = monotonic
        self._last: float | None = None
        self.pings = 0

    def __call__(self) -> bool:
        """Ping when due (the first call always pings); True when a ping was sent."""
        now = self.monotonic()
        if self._last is not None and now - self._last < self.interval_s:
            return False
        self._last = now
        self.pings += 1
        self.notify("WATCHDOG=1")
        return True


@dataclass(frozen=True, slots=True)
class NotifyMessage:
    """One received notify datagram, parsed (for tests and tooling)."""

    fields: dict[str, str]

    @classmethod
    def parse(cls, data: bytes) -> NotifyMessage:
        fields: dict[str, str] = {}
        for line in data.decode("utf-8", "replace").split("\n"):
            key, sep, value = line.partition("=")
            if sep:
                fields[key] = value
        return cls(fields)

"""A minimal asyncio MQTT 3.1.1 publisher for the load generator (not for devices).

Only what a simulated sentinel does: CONNECT (clean session, username and password),
PUBLISH at QoS 1 (optionally retained) with a future per packet id that the PUBACK
resolves, PINGREQ, DISCONNECT.  Every packet the broker sends is parsed; anything but
CONNACK, PUBACK and PINGRESP is ignored (the generator subscribes to nothing).

Why not aiomqtt (which this replaced) or gmqtt: with 10,000 clients in one process,
aiomqtt's per-client one-second timer, per-publish executor/epoll re-registration and
``asyncio.wait_for`` task made the generator the first bottleneck (profiled: ~400 µs of
CPU per message, 1,900 events/s at most, asked 5,000); gmqtt keeps PUBACKs internal (no
per-message acknowledgement to wait on).  Here a publish is one ``transport.write`` and
a future: the generator leaves the cores to the broker, the ingesters and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import time


class MqttError(Exception):
    """The connection failed or was refused; pending publishes fail with it."""


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n % 128, n // 128
        out.append(b | (128 if n else 0))
        if not n:
            return bytes(out)


def _str(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return len(b).to_bytes(2, "big") + b


def connect_packet(
    client_id: str, username: str | None, password: str | None, keepalive: int
) -> bytes:
    flags = 0x02 | (0x80 if username else 0) | (0x40 if password else 0)  # clean session
    body = b"\x00\x04MQTT\x04" + bytes([flags]) + keepalive.to_bytes(2, "big")
    body += _str(client_id)
    if username:
        body += _str(username)
    if password:
        body += _str(password)
    return b"\x10" + _varint(len(body)) + body


class Publisher(asyncio.Protocol):
    """One client connection: ``await Publisher.open(...)``, then ``publish`` futures."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.connack: asyncio.Future[None] = loop.create_future()
        self._acks: dict[int, asyncio.Future[None]] = {}
        self._mid = 0
        self.last_sent = time.monotonic()
        self.closed = False

    @classmethod
    async def open(
        cls,
        port: int,
        client_id: str,
        *,
        username: str | None = None,
        password: str | None = None,
        keepalive: int = 60,
        timeout_s: float = 30.0,
        host: str = "127.0.0.1",
    ) -> Publisher:
        loop = asyncio.get_running_loop()
        try:
            _t, proto = await asyncio.wait_for(loop.create_connection(cls, host, port), timeout_s)
            proto._write(connect_packet(client_id, username, password, keepalive))
            await asyncio.wait_for(asyncio.shield(proto.connack), timeout_s)
        except (OSError, TimeoutError) as exc:
            raise MqttError(f"connect: {exc!r}") from None
        return proto

    # --- asyncio.Protocol -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        while len(buf) >= 2:
            n, mult, i = 0, 1, 1
            while True:
                if i >= len(buf):
                    return  # the length is not all here yet
                b = buf[i]
                n += (b & 127) * mult
                mult *= 128
                i += 1
                if not b & 128:
                    break
                if i > 4:
                    self._fail(MqttError("malformed packet length"))
                    return
            if len(buf) < i + n:
                return
            kind, body = buf[0] >> 4, bytes(buf[i : i + n])
            del buf[: i + n]
            if kind == 2:  # CONNACK: session present, return code
                if not self.connack.done():
                    if len(body) >= 2 and body[1] == 0:
                        self.connack.set_result(None)
                    else:
                        self.connack.set_exception(MqttError(f"refused: {body[1:2].hex()}"))
            elif kind == 4 and len(body) >= 2:  # PUBACK
                fut = self._acks.pop(int.from_bytes(body[:2], "big"), None)
                if fut is not None and not fut.done():
                    fut.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(MqttError(f"connection lost: {exc!r}"))

    def _fail(self, err: MqttError) -> None:
        self.closed = True
        for fut in self._acks.values():
            if not fut.done():
                fut.set_exception(err)
        self._acks.clear()
        if not self.connack.done():
            self.connack.set_exception(err)
        if self.transport is not None:
            self.transport.close()

    # --- client side ------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        if self.closed or self.transport is None or self.transport.is_closing():
            raise MqttError("not connected")
        self.transport.write(data)
        self.last_sent = time.monotonic()

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> asyncio.Future[None]:
        """QoS 1: the future is done when the broker's PUBACK arrives."""
        if len(self._acks) >= 65535:
            raise MqttError("too many publishes in flight")
        mid = self._mid
        while True:
            mid = mid % 65535 + 1
            if mid not in self._acks:
                break
        self._mid = mid
        var = _str(topic) + mid.to_bytes(2, "big")
        head = bytes([0x32 | (1 if retain else 0)]) + _varint(len(var) + len(payload))
        fut: asyncio.Future[None] = self._loop.create_future()
        self._write(head + var + payload)
        self._acks[mid] = fut
        return fut

    def ping(self) -> None:
        self._write(b"\xc0\x00")

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            with contextlib.suppress(MqttError):
                self._write(b"\xe0\x00")  # DISCONNECT: a normal end, no will
            self.transport.close()
        self.closed = True

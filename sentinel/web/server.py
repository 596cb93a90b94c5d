"""uvicorn on a background thread, with a real "listening" signal (no sleeps).

Connections are capped (security review D5: 1 100 idle event streams exhausted the file
descriptors, and accept() failed for every page): past ``max_connections`` in total or
``max_per_client`` from one address, a new connection is aborted as soon as it is
accepted, so its descriptor is freed at once; past ``limit_concurrency`` requests uvicorn
answers 503.  Pages and streams already open keep working.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from sentinel.errors import ConfigError

log = logging.getLogger(__name__)
MAX_CONNECTIONS = 128
MAX_PER_CLIENT = 48
LIMIT_CONCURRENCY = 96


def capped_protocol(max_connections: int, max_per_client: int) -> type[H11Protocol]:
    """uvicorn's h11 protocol, aborting connections beyond the caps when they arrive."""

    class Capped(H11Protocol):
        refused = 0

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            host = self.client[0] if self.client else ""
            same = sum(1 for c in self.connections if c.client and c.client[0] == host)
            if len(self.connections) > max_connections or same > max_per_client:
                Capped.refused += 1
                if Capped.refused in (1, 10, 100) or Capped.refused % 1000 == 0:
                    log.warning("web: connection cap reached, %d refused", Capped.refused)
                transport.abort()

    return Capped


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets)
        finally:  # also on failure (port taken): start() then reports it
            self.ready.set()


class BackgroundServer:
    """Serve an ASGI app on ``host:port`` (port 0: any free port) from a daemon thread."""

    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        max_connections: int = MAX_CONNECTIONS,
        max_per_client: int = MAX_PER_CLIENT,
    ) -> None:
        self.host = host
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            http=capped_protocol(max_connections, max_per_client),
            limit_concurrency=LIMIT_CONCURRENCY,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        self.server = _Server(config)
        self._thread = threading.Thread(target=self._run, name="web", daemon=True)
        self._error: BaseException | None = None

    def _run(self) -> None:
        try:
            self.server.run()
        except BaseException as exc:  # SystemExit from uvicorn when it cannot bind
            self._error = exc
            self.server.ready.set()

    def start(self, timeout_s: float = 10.0) -> BackgroundServer:
        """Start and return once the socket listens; ConfigError when it cannot."""
        self._thread.start()
        if not self.server.ready.wait(timeout_s) or not self.server.started:
            self.stop()
            raise ConfigError(
                f"web: cannot listen on {self.host}:{self.server.config.port} (in use?)"
            )
        return self

    @property
    def port(self) -> int:
        return int(self.server.servers[0].sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self, timeout_s: float = 5.0) -> None:
        """Ask uvicorn to exit and wait for its thread (idempotent)."""
        self.server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

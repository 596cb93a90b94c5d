"""uvicorn on a background thread, with a real "listening" signal (no sleeps)."""

from __future__ import annotations

import socket
import threading
from typing import Any

import uvicorn

from sentinel.errors import ConfigError


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

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
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

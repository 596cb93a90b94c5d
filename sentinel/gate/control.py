"""A local control socket so ``sentinel override`` reaches the running service.

The service owns the GPIO lines, so a second process cannot pulse the relay itself.
It listens on a Unix stream socket ``<data_dir>/gate.sock`` (mode 0600: only the
service's user, or root, may connect).  One request per connection, one JSON line each
way, at most ``MAX_REQUEST_BYTES``, with a timeout::

    → {"cmd": "override", "reason": "paper", "staff": "staff-07"}
    ← {"ok": true, "event_id": "…"}          or  {"ok": false, "error": "…"}
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import socketserver
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sentinel.errors import HardwareError

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 4096
TIMEOUT_S = 5.0
SOCKET_NAME = "gate.sock"

Handler = Callable[[dict[str, Any]], dict[str, Any]]


class _Server(socketserver.UnixStreamServer):
    handle_request_fn: Handler


class _RequestHandler(socketserver.StreamRequestHandler):
    timeout = TIMEOUT_S

    def handle(self) -> None:
        line = self.rfile.readline(MAX_REQUEST_BYTES + 1)
        try:
            if len(line) > MAX_REQUEST_BYTES:
                raise ValueError("request too large")
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("request must be a JSON object")
            reply = self.server.handle_request_fn(request)  # type: ignore[attr-defined]
        except (ValueError, UnicodeDecodeError) as exc:
            reply = {"ok": False, "error": str(exc)}
        except Exception as exc:  # the service keeps running; the caller hears why
            log.exception("control request failed")
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        self.wfile.write(json.dumps(reply).encode() + b"\n")


class ControlServer:
    """Serves requests on ``path`` from a daemon thread until ``close()``."""

    def __init__(self, path: str | Path, handler: Handler) -> None:
        self.path = Path(path)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a stale socket from a crash
        old = os.umask(0o177)
        try:
            self._server = _Server(str(self.path), _RequestHandler)
        finally:
            os.umask(old)
        self._server.handle_request_fn = handler
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            daemon=True,
            name="gate-control",
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(TIMEOUT_S)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def send(path: str | Path, request: dict[str, Any], *, timeout_s: float = TIMEOUT_S) -> dict:
    """Send one request to the running service; HardwareError if it is not there."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout_s)
        try:
            s.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            raise HardwareError(
                f"the sentinel service is not running (no control socket at {path})"
            ) from None
        except PermissionError:
            raise HardwareError(f"no permission to use {path}: run as the service user") from None
        s.sendall(json.dumps(request).encode() + b"\n")
        with s.makefile("rb") as f:
            line = f.readline(MAX_REQUEST_BYTES + 1)
    try:
        reply = json.loads(line)
    except ValueError:
        raise HardwareError("the service sent no valid reply") from None
    if not isinstance(reply, dict):
        raise HardwareError("the service sent no valid reply")
    return reply

"""The web part of the service: kiosk feed from the pipeline, pages on a thread.

When ``[web] enabled`` is true, ``attach`` serves the app on ``web.host:web.port``
(127.0.0.1 by default: the kiosk browser runs on the device itself), feeds every
pipeline event to the kiosk, and lets staff open the gate once with the PIN; the
override is journaled as a device event.  The closer ends the live streams first, so
uvicorn shuts down at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class WebService:
    context: Any  # sentinel.web.app.WebContext
    server: Any  # sentinel.web.server.BackgroundServer

    @property
    def url(self) -> str:
        return self.server.url


def attach(daemon: Any) -> WebService | None:
    """Start the web app for ``daemon`` when the config enables it."""
    cfg = daemon.config
    if not cfg.web.enabled:
        return None
    from sentinel.web.app import WebContext, create_app
    from sentinel.web.server import BackgroundServer

    ctx = WebContext.for_config(
        cfg,
        trust_state=daemon.trust.state,
        override=lambda reason: _override(daemon, reason),
        clock=daemon.clock,
        journal=daemon.journal,  # thread-safe: the pages read it from worker threads
    )
    listener = ctx.hub.on_event
    daemon.pipeline.listeners.append(listener)
    daemon.pipeline.hint_listeners.append(ctx.hub.on_hint)
    server = BackgroundServer(create_app(ctx), cfg.web.host, cfg.web.port).start()
    service = WebService(ctx, server)
    daemon.web = service

    def close() -> None:
        if listener in daemon.pipeline.listeners:
            daemon.pipeline.listeners.remove(listener)
        if ctx.hub.on_hint in daemon.pipeline.hint_listeners:
            daemon.pipeline.hint_listeners.remove(ctx.hub.on_hint)
        ctx.hub.close()
        server.stop()

    daemon.add_closer(close)
    return service


def _override(daemon: Any, reason: str) -> str:
    """Open once from the kiosk: the gate area's override (gate, journal, audit)."""
    from sentinel.gate.override import OverrideRequest, record_override

    return record_override(
        # The kiosk PIN is the device's, not a person's: the staff id names the kiosk.
        OverrideRequest.parse(reason, "kiosk"),
        gate=daemon.gate,
        pipeline=daemon.pipeline,
        data_dir=daemon.config.data_dir,
        via="kiosk",
        now=daemon.clock(),
    )

"""The gate's part of the service.

``attach(daemon)``:

* journals the gate's signals (door held open, door forced, door closed after an
  alarm, exit button) through ``daemon.pipeline.device_event``, which also shows them
  on the kiosk; no personal data is involved in any of them;
* shows camera faults on the indicators (slow red blink) until the camera recovers;
* ticks the door machine every ``TICK_S`` as a backstop to the gate's own timers;
* serves ``<data_dir>/gate.sock`` so ``sentinel override`` can open the gate once
  (journaled with decision "override" and appended to the audit chain).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sentinel.gate.gate import GateSignal
from sentinel.gate.override import OverrideRequest, record_override
from sentinel.reasons import ReasonCode

log = logging.getLogger(__name__)

TICK_S = 0.5


def handle_control(daemon: Any, request: dict[str, Any]) -> dict[str, Any]:
    """One control-socket request (only "override" exists)."""
    if request.get("cmd") != "override":
        return {"ok": False, "error": "unknown command"}
    try:
        req = OverrideRequest.parse(request.get("reason"), request.get("staff"))
    except ValueError as exc:
        return {"ok": False, "error": str(exc)}
    event_id = record_override(
        req,
        gate=daemon.gate,
        pipeline=daemon.pipeline,
        data_dir=daemon.config.data_dir,
        via="cli",
        now=daemon.clock(),
    )
    return {"ok": True, "event_id": event_id}


def attach(daemon: Any) -> None:
    """Wire the gate's inputs, alarms and control socket into ``daemon``."""
    from sentinel.daemon import Periodic

    gate = daemon.gate
    pipeline = daemon.pipeline

    def journal_signal(sig: GateSignal) -> None:
        pipeline.device_event(sig.reason, sig.kind, daemon.clock())

    def show_faults(event: Any, _decision: Any) -> None:
        if event.reason == ReasonCode.CAMERA_FAULT.value:
            gate.fault(True)
        elif event.reason == ReasonCode.CAMERA_RECOVERED.value:
            gate.fault(False)

    gate.listeners.append(journal_signal)
    pipeline.listeners.append(show_faults)
    daemon.add_periodic(Periodic("gate-tick", TICK_S, gate.tick, run_at_start=False))

    control = None
    try:
        from sentinel.gate.control import SOCKET_NAME, ControlServer

        control = ControlServer(
            Path(daemon.config.data_dir) / SOCKET_NAME, lambda r: handle_control(daemon, r)
        )
    except OSError as exc:  # e.g. a data_dir path too long for a Unix socket
        log.warning("gate control socket unavailable (sentinel override will not work): %s", exc)

    def close() -> None:
        if control is not None:
            control.close()
        if journal_signal in gate.listeners:
            gate.listeners.remove(journal_signal)
        if show_faults in pipeline.listeners:
            pipeline.listeners.remove(show_faults)

    daemon.add_closer(close)

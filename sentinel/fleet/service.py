"""Fleet parts inside the device service: outbox hook, sender thread, heartbeats."""

from __future__ import annotations

import logging
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sentinel import __version__
from sentinel.config import Config
from sentinel.fleet.mqtt import BrokerSettings
from sentinel.fleet.outbox import Outbox
from sentinel.fleet.sender import Sender
from sentinel.reasons import ReasonCode

log = logging.getLogger(__name__)


def device_id(cfg: Config) -> str:
    return cfg.fleet.device_id or f"{cfg.venue.id}-{cfg.gate.id}"


def broker_settings(cfg: Config) -> BrokerSettings:
    f = cfg.fleet
    return BrokerSettings(
        host=f.broker_host,
        port=f.broker_port,
        tls=f.tls,
        ca_file=f.ca_file,
        username=f.username,
        password_file=f.password_file,
    )


def heartbeat_fields(daemon: Any, outbox: Outbox, now: datetime) -> dict[str, Any]:
    """What operators see of a device: data age, camera, gate, disk, backlog."""
    cfg: Config = daemon.config
    state = daemon.trust.state()
    age = (now - state.updated_at).total_seconds() if state.updated_at else None
    faults = []
    if outbox.full:
        faults.append("outbox_full")
    disk_full = getattr(daemon.pipeline, "disk_full_since", None) is not None
    if disk_full:
        faults.append("disk_full")
    camera = str(getattr(daemon, "camera_state", "ok"))
    if camera != "ok":
        faults.append(f"camera_{camera}")
    return {
        "venue": cfg.venue.id,
        "gate": cfg.gate.id,
        "time": now.isoformat(),
        "bundle_version": state.bundle_version,
        "bundle_age_s": age,
        "camera": camera,
        "gate_state": str(getattr(daemon.gate, "state_name", "ok")),
        "disk_free_bytes": shutil.disk_usage(Path(cfg.data_dir)).free,
        "disk_full": disk_full,  # journal writes failing: events acted on, not journaled
        "unjournaled": int(getattr(daemon.pipeline, "unjournaled", 0)),
        "software": __version__,
        "outbox_backlog": outbox.count(),
        "faults": ",".join(faults),
    }


class FleetPart:
    def __init__(self, daemon: Any) -> None:
        cfg: Config = daemon.config
        self.daemon = daemon
        self.outbox = Outbox(daemon.journal.path, device_id(cfg), max_rows=cfg.fleet.outbox_max)
        daemon.journal.hooks.append(self.outbox.hook)
        self.sender = Sender(
            self.outbox,
            broker_settings(cfg),
            venue=cfg.venue.id,
            device_id=device_id(cfg),
            batch_events=cfg.fleet.batch_events,
        )
        self._alarmed = False

    def tick(self) -> None:
        """Heartbeat, and raise the outbox-full alarm once per episode."""
        now = datetime.now(UTC)
        full = self.outbox.full
        if full and not self._alarmed:
            self.daemon.pipeline.device_event(ReasonCode.OUTBOX_FULL, "event", now)
        self._alarmed = full
        self.sender.heartbeat(heartbeat_fields(self.daemon, self.outbox, now))

    def close(self) -> None:
        self.sender.stop()
        self.outbox.close()


def attach(daemon: Any) -> None:
    if not daemon.config.fleet.enabled:
        return
    from sentinel.daemon import Periodic

    part = FleetPart(daemon)
    part.sender.start()
    daemon.fleet = part
    daemon.add_periodic(Periodic("fleet-heartbeat", daemon.config.fleet.heartbeat_s, part.tick))
    daemon.add_closer(part.close)

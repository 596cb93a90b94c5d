"""Device side: drain the outbox to the broker in order, QoS 1, deleting only on PUBACK."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from sentinel.fleet.mqtt import BrokerSettings, Connection, topic_events, topic_heartbeat
from sentinel.fleet.outbox import Outbox
from sentinel.fleet.wire import MAX_BATCH_EVENTS, batch_payload

log = logging.getLogger(__name__)


class Sender:
    """Publishes pending outbox rows in ``seq`` order, a window at a time.

    ``batch_events`` > 1 (the default): up to that many rows go in one v2 message
    (``sentinel.fleet.wire``), ``window`` messages in flight; 1: one v1 message per row
    (what a centre before the v2 format understands).  A row leaves the outbox only after
    the broker's PUBACK of the message holding it.  If the broker is away the
    rows stay; when it returns they go out in their original order.  A redelivery after
    a lost PUBACK is possible (at-least-once); the centre ingests by event id, so it
    never double-counts.
    """

    def __init__(
        self,
        outbox: Outbox,
        settings: BrokerSettings,
        *,
        venue: str,
        device_id: str,
        window: int = 50,
        batch_events: int = 100,
        ack_timeout_s: float = 10.0,
    ) -> None:
        if not 1 <= batch_events <= MAX_BATCH_EVENTS:
            raise ValueError(f"batch_events must be 1 to {MAX_BATCH_EVENTS}")
        self.outbox = outbox
        self.venue = venue
        self.device_id = device_id
        self.window = window
        self.batch_events = batch_events
        self.ack_timeout_s = ack_timeout_s
        self.conn = Connection(settings, client_id=f"sentinel-{device_id}", clean=True)
        self.stop_event = threading.Event()
        self.sent = 0
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.conn.start()
        self._thread = threading.Thread(target=self._run, name="fleet-sender", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self.stop_event.is_set():
            if not self.conn.connected.wait(timeout=1.0):
                continue
            batch = self.outbox.pending(self.window * self.batch_events)
            if not batch:
                self.outbox.wakeup.wait(timeout=1.0)
                self.outbox.wakeup.clear()
                continue
            self._send(batch)

    def _send(self, batch: list[Any]) -> None:
        topic = topic_events(self.venue, self.device_id)
        n = self.batch_events
        groups = [batch[k : k + n] for k in range(0, len(batch), n)]
        infos: list[tuple[list[int], mqtt.MQTTMessageInfo]] = []
        for group in groups:
            payload = group[0].payload if n == 1 else batch_payload([p.payload for p in group])
            info = self.conn.client.publish(topic, payload, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                break
            infos.append(([p.seq for p in group], info))
        acked: list[int] = []
        for seqs, info in infos:
            try:
                info.wait_for_publish(timeout=self.ack_timeout_s)
            except (RuntimeError, ValueError):
                break
            if not info.is_published():
                break
            acked += seqs  # an ordered prefix of the window
        self.outbox.ack(acked)
        self.sent += len(acked)
        if len(acked) < len(batch):
            # the broker went away mid-window: wait for the reconnection, then resend
            self.stop_event.wait(0.2)

    def heartbeat(self, fields: dict[str, Any]) -> bool:
        """Publish a retained heartbeat; False when the broker is away."""
        if not self.conn.connected.is_set():
            return False
        payload = json.dumps({**fields, "device_id": self.device_id}, sort_keys=True).encode()
        info = self.conn.client.publish(
            topic_heartbeat(self.venue, self.device_id), payload, qos=1, retain=True
        )
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    def drained(self, timeout_s: float, clock: Callable[[], float]) -> bool:
        """Wait until the outbox is empty or ``timeout_s`` passes (for tools and tests)."""
        end = clock() + timeout_s
        while self.outbox.count() and clock() < end:
            self.stop_event.wait(0.05)
        return self.outbox.count() == 0

    def stop(self) -> None:
        self.stop_event.set()
        self.outbox.wakeup.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
        self.conn.stop()

"""MQTT plumbing shared by the device sender and the central ingester (paho-mqtt)."""

from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from sentinel.errors import ConfigError


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    host: str = "127.0.0.1"
    port: int = 1883
    tls: bool = False
    ca_file: str | None = None
    username: str | None = None
    password_file: str | None = None
    keepalive_s: int = 30


def topic_events(venue: str, device_id: str) -> str:
    return f"sentinel/{venue}/{device_id}/events"


def topic_heartbeat(venue: str, device_id: str) -> str:
    return f"sentinel/{venue}/{device_id}/heartbeat"


class Connection:
    """A paho client with a background network loop and a 'connected' event.

    paho reconnects by itself (with its own backoff, ``reconnect_delay_set``); callers
    wait on ``connected`` rather than polling.
    """

    def __init__(
        self,
        settings: BrokerSettings,
        client_id: str,
        *,
        clean: bool = True,
        on_message: Any = None,
        subscriptions: tuple[str, ...] = (),
    ) -> None:
        self.settings = settings
        self.connected = threading.Event()
        self.subscriptions = subscriptions
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean,
            protocol=mqtt.MQTTv311,
        )
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.max_inflight_messages_set(100)
        if settings.username:
            password = None
            if settings.password_file:
                try:
                    password = Path(settings.password_file).read_text().strip()
                except OSError as exc:
                    raise ConfigError(
                        f"{settings.password_file}: cannot read broker password: {exc.strerror}"
                    ) from None
            self.client.username_pw_set(settings.username, password)
        if settings.tls:
            self.client.tls_set(ca_certs=settings.ca_file, cert_reqs=ssl.CERT_REQUIRED)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        if on_message is not None:
            self.client.on_message = on_message

    def _on_connect(self, client: mqtt.Client, _ud: Any, _flags: Any, rc: Any, _p: Any) -> None:
        if not rc.is_failure:
            for t in self.subscriptions:
                client.subscribe(t, qos=1)
            self.connected.set()

    def _on_disconnect(self, _c: mqtt.Client, _ud: Any, _f: Any, _rc: Any, _p: Any) -> None:
        self.connected.clear()

    def start(self) -> None:
        # connect_async + loop_start: the first connection may fail; paho keeps retrying.
        self.client.connect_async(
            self.settings.host, self.settings.port, keepalive=self.settings.keepalive_s
        )
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

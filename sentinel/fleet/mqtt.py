"""MQTT plumbing shared by the device sender and the central ingester (paho-mqtt)."""

from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

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
        v5: bool = False,
        manual_ack: bool = False,
        receive_maximum: int | None = None,
        session_expiry_s: int = 0,
    ) -> None:
        """``v5``: MQTT 5 (needed for ``$share/...`` subscriptions and Receive Maximum).

        ``manual_ack``: paho sends PUBACK only when the caller calls ``client.ack`` (the
        ingester does so after its batch is committed).  ``session_expiry_s`` > 0 with
        ``clean=False`` keeps the MQTT 5 session (and its unacknowledged messages) for that
        long while the client is away (MQTT 5.0 §3.1.2.11.2).
        """
        self.settings = settings
        self.connected = threading.Event()
        self.subscribed = threading.Event()  # every subscription acknowledged (SUBACK)
        self._suback_waiting: set[int] = set()
        self.subscriptions = subscriptions
        self.v5 = v5
        self.clean = clean
        self.connect_properties: Properties | None = None
        if v5:
            self.client = mqtt.Client(
                mqtt.CallbackAPIVersion.VERSION2,
                client_id=client_id,
                protocol=mqtt.MQTTv5,
                manual_ack=manual_ack,
            )
            props = Properties(PacketTypes.CONNECT)
            if session_expiry_s:
                props.SessionExpiryInterval = session_expiry_s
            if receive_maximum:
                props.ReceiveMaximum = receive_maximum  # MQTT 5.0 §3.1.2.11.3
            self.connect_properties = props
        else:
            self.client = mqtt.Client(
                mqtt.CallbackAPIVersion.VERSION2,
                client_id=client_id,
                clean_session=clean,
                protocol=mqtt.MQTTv311,
                manual_ack=manual_ack,
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
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = self._on_disconnect
        if on_message is not None:
            self.client.on_message = on_message

    def _on_connect(self, client: mqtt.Client, _ud: Any, _flags: Any, rc: Any, _p: Any) -> None:
        if not rc.is_failure:
            self.subscribed.clear()
            for t in self.subscriptions:
                _rc, mid = client.subscribe(t, qos=1)
                self._suback_waiting.add(mid)
            if not self.subscriptions:
                self.subscribed.set()
            self.connected.set()

    def _on_subscribe(self, _c: mqtt.Client, _ud: Any, mid: int, _rcs: Any, _p: Any) -> None:
        self._suback_waiting.discard(mid)
        if not self._suback_waiting:
            self.subscribed.set()

    def _on_disconnect(self, _c: mqtt.Client, _ud: Any, _f: Any, _rc: Any, _p: Any) -> None:
        self.connected.clear()

    def start(self) -> None:
        # connect_async + loop_start: the first connection may fail; paho keeps retrying.
        if self.v5:
            self.client.connect_async(
                self.settings.host,
                self.settings.port,
                keepalive=self.settings.keepalive_s,
                clean_start=self.clean,
                properties=self.connect_properties,
            )
        else:
            self.client.connect_async(
                self.settings.host, self.settings.port, keepalive=self.settings.keepalive_s
            )
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

"""A one-process asyncio load generator: thousands of simulated sentinels on one broker.

    python -m sentinel.fleet.loadgen --port 1883 --devices 10000 --seconds 60 --rate 5000

Each simulated device is its own MQTT client (aiomqtt, its own client id and, with
``--passwords``, its own credentials), publishes a retained heartbeat on connect and every
``--heartbeat-s``, first drains a backlog of ``--backlog`` events (as a device does after
being offline; ``--batch`` events per message, the v2 format, as the device sender),
then journals live events at its share of ``--rate`` (0: as fast as the broker
acknowledges) until ``--seconds`` have passed.  Events are QoS 1 and a device sends
its next event only after the broker's PUBACK, like the real outbox; an event whose
PUBACK never came is sent again with the same id after a reconnect.

Event ids are ``<run>-<device index>-<seq>``; the JSON summary on stdout gives every
device's count of acknowledged events, so a caller can check the database for losses
(each acknowledged id present) and duplicates.  Event times are the moment the event
was made ("journal write"), so ``ingested_at - time`` in PostgreSQL is the end-to-end lag.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import resource
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt

from sentinel.fleet.mqtt import topic_events, topic_heartbeat
from sentinel.fleet.wire import batch_payload

_QUIET = logging.getLogger("sentinel.fleet.loadgen.mqtt")
_QUIET.setLevel(logging.ERROR)  # aiomqtt warns about every window of > 10 pending publishes
REASONS = ("EXPIRED", "TEST_TOO_OLD", "BAD_SIGNATURE", "REVOKED", "CODE_RED", "ADMIT")


@dataclass
class Spec:
    port: int
    devices: list[tuple[str, str]]  # (venue, device id)
    seconds: float = 10.0
    rate: float = 0.0  # events/s offered by all devices together; 0 = unpaced
    backlog: int = 0
    heartbeat_s: float = 30.0
    run: str = "run"
    passwords: dict[str, str] = field(default_factory=dict)
    connect_parallel: int = 200
    alert_every: int = 0  # every n-th live event is a CODE_RED refusal (0: never)
    grace_s: float = 30.0  # after the deadline, windows in flight may finish this long
    connect_timeout_s: float = 120.0  # traffic starts when all are connected, or then
    window: int = 50  # messages in flight per device (as the device sender's window)
    batch: int = 1  # events per message: 1 = v1 messages, more = v2 batches (wire.py)


@dataclass
class DeviceStats:
    acked: int = 0
    heartbeats: int = 0
    reconnects: int = 0
    connected: bool = False


def raise_fd_limit(want: int) -> int:
    """Raise the soft open-files limit to ``want`` (and the hard one, when root)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if want > hard and os.geteuid() == 0:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return want
        except (ValueError, OSError):
            pass
    new = min(max(soft, want), hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return new


def event_payload(
    run: str, index: int, seq: int, venue: str, device: str, t: datetime, reason: str
) -> bytes:
    doc = {
        "event_id": f"{run}-{index}-{seq}",
        "device_id": device,
        "venue": venue,
        "gate": "g1",
        "time": t.isoformat(),
        "decision": "admit" if reason == "ADMIT" else "refuse",
        "reason": reason,
        "credential_kind": "health-code" if reason == "CODE_RED" else "dcc-test",
        "bundle_version": "7",
    }
    return json.dumps(doc, separators=(",", ":")).encode()


class Generator:
    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.stats = [DeviceStats() for _ in spec.devices]
        self.deadline = 0.0
        self.t0 = 0.0
        self.traffic_from = 0.0
        self.go = asyncio.Event()
        self._connect_gate = asyncio.Semaphore(spec.connect_parallel)
        self.connected = 0
        self.all_connected_s: float | None = None

    async def run(self) -> dict[str, Any]:
        """Connect every device (each sends its first heartbeat), then traffic for ``seconds``."""
        t0 = self.t0 = time.monotonic()
        self.deadline = t0 + self.spec.connect_timeout_s + self.spec.seconds
        self.go = asyncio.Event()
        timer = asyncio.get_running_loop().call_later(self.spec.connect_timeout_s, self._start)
        tasks = [asyncio.create_task(self._device(i)) for i in range(len(self.spec.devices))]
        # bounded: a window still in flight long after the deadline is abandoned (not acked)
        limit = self.spec.connect_timeout_s + self.spec.seconds + self.spec.grace_s
        _done, late = await asyncio.wait(tasks, timeout=limit)
        for t in late:
            t.cancel()
        if late:
            await asyncio.wait(late, timeout=10)
        timer.cancel()
        return {
            "connected": self.connected,
            "traffic_s": time.monotonic() - self.traffic_from if self.traffic_from else 0.0,
            "devices": len(self.spec.devices),
            "acked": [s.acked for s in self.stats],
            "events": sum(s.acked for s in self.stats),
            "heartbeats": sum(s.heartbeats for s in self.stats),
            "reconnects": sum(s.reconnects for s in self.stats),
            "abandoned": len(late),
            "all_connected_s": self.all_connected_s,
            "elapsed_s": time.monotonic() - t0,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "cpu_s": sum(resource.getrusage(resource.RUSAGE_SELF)[:2]),
        }

    def _start(self) -> None:
        if not self.go.is_set():
            self.traffic_from = time.monotonic()
            self.deadline = self.traffic_from + self.spec.seconds
            self.go.set()

    def _arrived(self) -> None:
        self.connected += 1
        if self.connected == len(self.spec.devices):
            self.all_connected_s = time.monotonic() - self.t0
            self._start()

    async def _device(self, i: int) -> None:
        venue, device = self.spec.devices[i]
        st = self.stats[i]
        rng = random.Random(i)
        seq = 0
        per_device_rate = self.spec.rate / len(self.spec.devices) if self.spec.rate else 0.0
        next_hb = 0.0
        next_live = 0.0
        backlog_end = datetime.now(UTC)
        pending: list[bytes] = []
        first = True
        while time.monotonic() < self.deadline:
            try:
                async with self._connect_gate:
                    client = aiomqtt.Client(
                        "127.0.0.1",
                        self.spec.port,
                        identifier=f"sentinel-{device}",
                        username=device if self.spec.passwords else None,
                        password=self.spec.passwords.get(device),
                        keepalive=60,
                        timeout=30,
                        clean_session=True,
                        logger=_QUIET,
                    )
                    await client.__aenter__()
                try:
                    if first:
                        first = False
                        await client.publish(
                            topic_heartbeat(venue, device),
                            self._heartbeat(venue, device, self.spec.backlog),
                            qos=1,
                            retain=True,
                        )
                        st.heartbeats += 1
                        self._arrived()
                        await self.go.wait()
                        next_hb = time.monotonic() + self.spec.heartbeat_s * rng.random()
                        # live events start at a random phase so devices do not beat together
                        next_live = time.monotonic() + (
                            rng.random() / per_device_rate if per_device_rate else 0.0
                        )
                    while time.monotonic() < self.deadline:
                        now = time.monotonic()
                        if now >= next_hb:
                            await client.publish(
                                topic_heartbeat(venue, device),
                                self._heartbeat(venue, device, max(0, self.spec.backlog - seq)),
                                qos=1,
                                retain=True,
                            )
                            st.heartbeats += 1
                            next_hb = now + self.spec.heartbeat_s
                        window = list(pending)  # PUBACKs did not all come: the same again
                        most = self.spec.window * self.spec.batch
                        while not pending and len(window) < most:
                            k = seq + len(window)
                            if k < self.spec.backlog:
                                # queued while offline: journaled in the last `backlog` seconds
                                t = backlog_end - timedelta(seconds=self.spec.backlog - k)
                            elif per_device_rate and next_live > time.monotonic():
                                break  # the next live event is not due yet
                            else:
                                if per_device_rate:
                                    next_live += 1.0 / per_device_rate
                                t = datetime.now(UTC)
                            window.append(self._event(i, k, venue, device, t))
                        if not window:
                            now = time.monotonic()
                            await asyncio.sleep(
                                max(0.001, min(next_live - now, next_hb - now, self.deadline - now))
                            )
                            continue
                        # a window in flight, like the device's sender; all acknowledged or
                        # all sent again (same ids) after a reconnect
                        topic = topic_events(venue, device)
                        b = self.spec.batch
                        messages = window
                        if b > 1:
                            chunks = range(0, len(window), b)
                            messages = [batch_payload(window[k : k + b]) for k in chunks]
                        await asyncio.gather(*(client.publish(topic, p, qos=1) for p in messages))
                        seq += len(window)
                        st.acked = seq
                finally:
                    await client.__aexit__(None, None, None)
                return
            except aiomqtt.MqttError:
                st.reconnects += 1
                await asyncio.sleep(0.2 + rng.random() * 0.3)

    def _event(self, i: int, seq: int, venue: str, device: str, t: datetime) -> bytes:
        live_n = seq - self.spec.backlog
        every = self.spec.alert_every
        if every and live_n >= 0 and live_n % every == every - 1:
            reason = "CODE_RED"
        else:
            reason = REASONS[(i + seq) % (4 if every else len(REASONS))]
        return event_payload(self.spec.run, i, seq, venue, device, t, reason)

    @staticmethod
    def _heartbeat(venue: str, device: str, backlog: int) -> bytes:
        return json.dumps(
            {
                "device_id": device,
                "venue": venue,
                "gate": "g1",
                "time": datetime.now(UTC).isoformat(),
                "bundle_version": "7",
                "bundle_age_s": 60.0,
                "camera": "ok",
                "gate_state": "closed",
                "disk_free_bytes": 10_000_000_000,
                "software": "loadgen",
                "outbox_backlog": backlog,
                "faults": "",
            }
        ).encode()


def count_lost(conn: Any, run: str, acked: list[int]) -> int:
    """Acknowledged events of ``run`` (ids run-<i>-<seq>, seq < acked[i]) missing from
    ``events`` in the PostgreSQL connection ``conn``."""
    row = conn.execute(
        "SELECT count(*) FROM events WHERE event_id LIKE %s AND "
        "split_part(event_id, '-', 3)::int < (%s::int[])[split_part(event_id, '-', 2)::int + 1]",
        (f"{run}-%", acked),
    ).fetchone()
    return sum(acked) - int(row[0])


def device_list(n: int, venues: int) -> list[tuple[str, str]]:
    """``n`` devices spread over ``venues`` venues: ids ``v0003-d0042``."""
    return [(f"v{i % venues:04d}", f"v{i % venues:04d}-d{i:05d}") for i in range(n)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--devices", type=int, default=100)
    ap.add_argument("--venues", type=int, default=0, help="default: devices / 2")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--rate", type=float, default=0, help="events/s offered in total (0: max)")
    ap.add_argument("--backlog", type=int, default=0, help="events queued per device")
    ap.add_argument("--heartbeat-s", type=float, default=30)
    ap.add_argument("--alert-every", type=int, default=0)
    ap.add_argument("--window", type=int, default=50, help="messages in flight per device")
    ap.add_argument("--batch", type=int, default=1, help="events per message (1: v1 format)")
    ap.add_argument("--run", default="run")
    ap.add_argument("--passwords", help="JSON file {device id: password}")
    args = ap.parse_args(argv)
    raise_fd_limit(4 * args.devices + 256)  # socket + paho's wake-up socket pair per client
    spec = Spec(
        port=args.port,
        devices=device_list(args.devices, args.venues or max(1, args.devices // 2)),
        seconds=args.seconds,
        rate=args.rate,
        backlog=args.backlog,
        heartbeat_s=args.heartbeat_s,
        run=args.run,
        passwords=json.loads(Path(args.passwords).read_text()) if args.passwords else {},
        alert_every=args.alert_every,
        window=args.window,
        batch=args.batch,
    )
    summary = asyncio.run(Generator(spec).run())
    json.dump(summary, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
